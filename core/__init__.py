"""mllm.core: the library behind the `mllm` command. Every subcommand is a thin call into it."""

__version__ = "0.1.0"
