"""The runtime's subcommands: argument parsing, each calling the package that does the work."""
