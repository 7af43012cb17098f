"""Subcommands of `zhengai`, one module each; every module offers `register(subparsers)`."""
