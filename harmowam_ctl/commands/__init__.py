"""Sub-commands of ``harmowam`` that live in their own modules.

Each module has ``add_parser(subparsers)`` (adds its command to the ``harmowam`` parser) and
``run(args) -> int`` (the exit code: 0 ok, 1 failure, 2 bad input).
"""
