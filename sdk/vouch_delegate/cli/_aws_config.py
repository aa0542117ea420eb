"""The AWS config file (`~/.aws/config`): one profile's settings written into its text.

configparser would drop every comment and reorder nothing else: the file is edited as text,
section by section, so other profiles, comments and layout stay as they were.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path

from vouch_delegate._errors import ConfigError

_HEADER = re.compile(r"\s*\[\s*([^\]]*?)\s*\]\s*(?:[#;].*)?")
_KEY = re.compile(r"\s*([^=\s#;][^=]*?)\s*=")
_PROFILE_NAME = re.compile(r"[A-Za-z0-9_.@+-]{1,64}")


def config_path(env: Mapping[str, str]) -> Path:
    """$AWS_CONFIG_FILE, else ~/.aws/config (as the AWS CLI and SDKs find it)."""
    named = env.get("AWS_CONFIG_FILE")
    return Path(named).expanduser() if named else Path.home() / ".aws" / "config"


def section_name(profile: str) -> str:
    """The config file's header for `profile`: "default" or "profile NAME".

    Raises: ConfigError for a name the AWS tools would not read back as one profile.
    """
    if not _PROFILE_NAME.fullmatch(profile):
        raise ConfigError(
            f"profile name {profile!r}: use letters, digits and . _ - @ + (at most 64)"
        )
    return "default" if profile == "default" else f"profile {profile}"


def _header_of(line: str) -> str | None:
    match = _HEADER.fullmatch(line.rstrip("\n"))
    return " ".join(match.group(1).split()) if match else None


def with_profile(text: str, profile: str, settings: Mapping[str, str]) -> str:
    """`text` with `settings` in `profile`'s section, each key once, everything else kept.

    Keys already there are replaced where they stand (their continuation lines too); new
    keys follow the section's last setting; a missing section is appended at the end.
    """
    wanted = section_name(profile)
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    start = next((i for i, line in enumerate(lines) if _header_of(line) == wanted), None)
    fresh = [f"{key} = {value}\n" for key, value in settings.items()]
    if start is None:
        gap = ["\n"] if lines and lines[-1].strip() else []
        return "".join([*lines, *gap, f"[{wanted}]\n", *fresh])
    end = next(
        (i for i in range(start + 1, len(lines)) if _header_of(lines[i]) is not None),
        len(lines),
    )
    body, written, i = [], set(), start + 1
    while i < end:
        line = lines[i]
        key = _KEY.match(line)
        name = key.group(1).lower() if key and not line[:1].isspace() else None
        i += 1
        if name is None or name not in settings:
            body.append(line)
            continue
        while i < end and lines[i][:1] in (" ", "\t") and lines[i].strip():
            i += 1  # the replaced key's continuation lines
        if name not in written:
            body.append(f"{name} = {settings[name]}\n")
            written.add(name)
    last = max((n for n, line in enumerate(body) if line.strip()), default=-1)
    missing = [line for line in fresh if line.split(" = ", 1)[0] not in written]
    body[last + 1 : last + 1] = missing
    return "".join([*lines[: start + 1], *body, *lines[end:]])


def write_profile(path: Path, profile: str, settings: Mapping[str, str]) -> bool:
    """Write `settings` into `profile` in the file at `path` (created 0600, its directory
    0700); False when the file already said exactly that.

    Raises: ConfigError when the file cannot be read or written.
    """
    path = path.resolve()  # a symlinked config (dotfiles) is written where it lives
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read the AWS config file {path} ({exc})") from None
    updated = with_profile(text or "", profile, settings)
    if updated == text:
        return False
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        mode = (path.stat().st_mode & 0o7777) if text is not None else 0o600
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(updated)
            os.chmod(temporary, mode)
            os.replace(temporary, path)  # whole or not at all: other profiles live here too
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise ConfigError(f"cannot write the AWS config file {path} ({exc})") from None
    return True
