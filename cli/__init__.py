"""mllm.cli: the Typer app. One module per subcommand; options are wired to mllm.core."""

from mllm.core.threads import sleeping_idle_threads

# Before torch (and its OpenMP runtime) is imported by any subcommand module: see core/threads.py.
sleeping_idle_threads()
