"""Sub-commands of ``stylerec``: one module per area, each with ``register(subparsers)``.

A module's ``register`` adds its parsers and sets ``func`` (``args -> int``) on each.
"""
