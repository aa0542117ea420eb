"""Reading TOML policy files so that every problem is collected, each with its key path.

The catalog and the org policy both validate through `Table`: its getters record a
problem and return a fallback instead of raising, so one pass reports everything.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from policies.duration import parse_duration
from policies.errors import PolicyFileError, Problem


def read_toml(path: Path) -> dict[str, Any]:
    """The parsed file.

    Raises:
        PolicyFileError: unreadable, not UTF-8 or not TOML.
    """
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        raise PolicyFileError(
            str(path), [Problem(str(path), "", exc.strerror or str(exc))]
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise PolicyFileError(str(path), [Problem(str(path), "", f"not TOML: {exc}")]) from exc
    except UnicodeDecodeError as exc:
        raise PolicyFileError(
            str(path), [Problem(str(path), "", f"not UTF-8 text (byte {exc.start})")]
        ) from exc


def suggest(word: str, choices: Iterable[str]) -> str:
    """ " (did you mean X?)" for the closest choice, or ""."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""


class Problems:
    """The problems found in one file so far."""

    def __init__(self, file: str) -> None:
        self.file = file
        self.items: list[Problem] = []

    def add(self, location: str, message: str) -> None:
        self.items.append(Problem(self.file, location, message))

    def raise_if_any(self) -> None:
        if self.items:
            raise PolicyFileError(self.file, self.items)


class Table:
    """One TOML table under validation; unknown keys are problems (a typo must not pass)."""

    def __init__(
        self, data: Mapping[str, Any], location: str, problems: Problems, known: tuple[str, ...]
    ) -> None:
        self.data = data
        self.location = location
        self.problems = problems
        for key in data:
            if key not in known:
                problems.add(self.at(key), f"unknown key{suggest(key, known)}")

    def at(self, key: str) -> str:
        return f"{self.location}.{key}" if self.location else key

    def problem(self, key: str, message: str) -> None:
        self.problems.add(self.at(key), message)

    def _typed(self, key: str, kind: type | tuple[type, ...], what: str, required: bool) -> Any:
        if key not in self.data:
            if required:
                self.problem(key, f"missing (expected {what})")
            return None
        value = self.data[key]
        # bool is an int subclass in Python; TOML keeps them apart and so do we.
        if not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            self.problem(key, f"expected {what}, got {type(value).__name__} {value!r}")
            return None
        return value

    def string(self, key: str, *, required: bool = False, pattern: str | None = None) -> str | None:
        """The string at key; with pattern, it must match it in full."""
        value: str | None = self._typed(key, str, "a string", required)
        if value is not None and pattern is not None and re.fullmatch(pattern, value) is None:
            self.problem(key, f"{value!r} is not a valid {key.replace('_', ' ')}")
            return None
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value: bool | None = self._typed(key, bool, "true or false", False)
        return default if value is None else value

    def integer(self, key: str, *, low: int, high: int) -> int | None:
        value: int | None = self._typed(key, int, "an integer", False)
        if value is not None and not low <= value <= high:
            self.problem(key, f"{value} is outside {low}..{high}")
            return None
        return value

    def duration(self, key: str, *, low: int, high: int) -> int | None:
        """Seconds from an integer or "8h"-style string, within low..high."""
        if key not in self.data:
            return None
        raw = self.data[key]
        seconds = parse_duration(raw)
        if seconds is None:
            self.problem(key, f'expected seconds or a duration like "8h" or "90m", got {raw!r}')
        elif not low <= seconds <= high:
            self.problem(key, f"{raw!r} ({seconds} s) is outside {low}..{high} s")
            return None
        return seconds

    def strings(self, key: str, *, required: bool = False) -> list[tuple[str, str]]:
        """(location, value) for each string of the list at key; bad items are problems."""
        values: list[Any] | None = self._typed(key, list, "a list of strings", required)
        out: list[tuple[str, str]] = []
        for i, item in enumerate(values or []):
            where = f"{self.at(key)}[{i}]"
            if isinstance(item, str):
                out.append((where, item))
            else:
                self.problems.add(where, f"expected a string, got {item!r}")
        return out

    def table(self, key: str, known: tuple[str, ...] | None = None) -> Table | None:
        """The sub-table at key; known=None accepts any key (a name -> value map)."""
        value: Mapping[str, Any] | None = self._typed(key, dict, "a table", False)
        if value is None:
            return None
        return Table(value, self.at(key), self.problems, tuple(value) if known is None else known)

    def tables(self, key: str, known: tuple[str, ...]) -> list[Table]:
        """The array of tables at key ([[key]] in TOML)."""
        values: list[Any] | None = self._typed(key, list, "an array of tables", False)
        out: list[Table] = []
        for i, item in enumerate(values or []):
            where = f"{self.at(key)}[{i}]"
            if isinstance(item, dict):
                out.append(Table(item, where, self.problems, known))
            else:
                self.problems.add(where, f"expected a table, got {item!r}")
        return out
