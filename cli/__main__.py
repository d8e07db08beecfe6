"""`python -m mllm.cli` runs the `mllm` command."""

from mllm.cli.main import main

main()
