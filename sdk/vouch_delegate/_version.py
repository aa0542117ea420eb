"""The distribution version (kept in step with sdk/pyproject.toml)."""

__version__ = "0.1.0"
