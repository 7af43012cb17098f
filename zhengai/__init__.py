"""zhengai — composition root: CLI, embedded runner, demo college."""

__version__ = "0.1.0"
