"""mllm.cli: the Typer app. One module per subcommand; options are wired to mllm.core."""
