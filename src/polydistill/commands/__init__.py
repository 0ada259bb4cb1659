"""CLI subcommands, one module each.

Every module here defines ``register(subparsers)`` which adds its subcommand and sets
``func`` on the parser to a callable taking the parsed ``argparse.Namespace``.
Heavy libraries are imported inside those callables so that ``polydistill --help`` is instant.
"""
