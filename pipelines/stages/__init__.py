"""The nightly stages: each module has ``run(ctx) -> metrics``."""
