"""The locked requirements an image's Python may need, for `pip download` on another host.

    python docker/wheelhouse.py REQUIREMENTS [--machine x86_64] [--python 3.11] > DOWNLOAD

pip evaluates environment markers against the interpreter it runs on, so a wheelhouse
downloaded on a host with Python 3.11.7 lacks `async-timeout ; python_full_version <
'3.11.3'`, which Debian bookworm's 3.11.2 installs. This keeps every requirement whose
marker holds for some CPython 3.11.x on Linux and that machine, drops the markers (pip
download would skip them again) and keeps the hashes; the image's pip then evaluates the
original markers (docker/local-images.sh, docker/Dockerfile). Needs `packaging`.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from packaging.markers import Marker

# name==version [; marker] --hash=... [--hash=...], once continuation lines are joined
ENTRY = re.compile(r"^(?P<pin>\S+==\S+)(?:\s*;\s*(?P<marker>.+?))?\s+(?P<hashes>--hash=.+)$")
PATCH_RELEASES = 40  # 3.11.0 ... 3.11.39: every threshold a marker can name within a minor


def environments(machine: str, python: str) -> list[dict[str, str]]:
    """Marker environments of every CPython `python`.x on Linux and `machine`."""
    return [
        {
            "implementation_name": "cpython",
            "implementation_version": f"{python}.{patch}",
            "os_name": "posix",
            "platform_machine": machine,
            "platform_python_implementation": "CPython",
            "platform_system": "Linux",
            "python_full_version": f"{python}.{patch}",
            "python_version": python,
            "sys_platform": "linux",
        }
        for patch in range(PATCH_RELEASES)
    ]


def for_download(text: str, envs: list[dict[str, str]]) -> list[str]:
    """`pin --hash...` lines of the entries some environment needs, without markers.

    Raises:
        ValueError: an entry without hashes, or a line that is not a pinned entry.
    """
    out = []
    for raw in text.replace("\\\n", " ").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        match = ENTRY.match(line)
        if not match:
            raise ValueError(f"not a pinned requirement with hashes: {line!r}")
        marker = match["marker"]
        if marker is None or any(Marker(marker).evaluate(env) for env in envs):
            out.append(f"{match['pin']} {match['hashes']}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("requirements", type=Path)
    parser.add_argument("--machine", default="x86_64", help="platform_machine (uname -m)")
    parser.add_argument("--python", default="3.11", help="major.minor of the image's Python")
    args = parser.parse_args()
    lines = for_download(args.requirements.read_text(), environments(args.machine, args.python))
    sys.stdout.write("".join(f"{line}\n" for line in lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
