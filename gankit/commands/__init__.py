"""One module per `gankit` subcommand: `register(subparsers)` adds its arguments (argparse only, no heavy
imports), `run(args) -> int` does the work and imports what it needs."""
