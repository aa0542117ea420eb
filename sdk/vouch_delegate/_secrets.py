"""Secrets kept out of `repr()`: tracebacks with locals and error reporters print it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any


def hidden(value: object) -> str:
    """How a secret shows in a repr: its length, never its text."""
    return f"<{len(value)} characters, hidden>" if isinstance(value, str) else repr(value)


def masked_repr(*secrets: str) -> Callable[[Any], str]:
    """A `__repr__` for a msgspec Struct or a dataclass that hides the fields `secrets`."""

    def __repr__(self: Any) -> str:  # noqa: N807 -- it is installed as the class's __repr__
        names = getattr(self, "__struct_fields__", None) or [
            f.name for f in dataclasses.fields(self) if f.repr
        ]
        shown = ", ".join(
            f"{name}={hidden(value) if name in secrets and value is not None else repr(value)}"
            for name in names
            for value in (getattr(self, name),)
        )
        return f"{type(self).__name__}({shown})"

    return __repr__
