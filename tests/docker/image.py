"""What docs/operating.md and docker/Dockerfile claim of the broker image, checked on its files.

Non-root user, a healthcheck, nothing secret baked in (no private key in any file, no
secret-looking variable, no password in the build history), and a runtime without a
compiler, pip, a pip cache, build leftovers or dev dependencies.
"""

from __future__ import annotations

import json
import re
import subprocess
import tarfile
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from tests.docker.checks import Checks, SmokeFailed, run

ROOT = Path(__file__).resolve().parents[2]
SITE = "opt/vouch/lib/"
BUILD_TOOLS = {"pip", "setuptools", "wheel", "hatchling", "uv"}
# A toolchain on PATH, by file name (the base image's own /usr/bin and /usr/local/bin).
COMPILERS = re.compile(
    r"^usr/(local/)?bin/(cc|c\+\+|gcc|g\+\+|clang|clang\+\+|ld|as|make)(-[\d.]+)?$"
)
# Build-stage leftovers that must not reach the runtime stage.
LEFTOVERS = ("src/", "dist/", "wheelhouse/", "opt/uv/", "opt/build/")
SECRET_NAMES = re.compile(r"PASSWORD|SECRET|TOKEN|ACCESS_KEY|PRIVATE", re.IGNORECASE)
MAX_SCANNED = 4 << 20  # read files up to 4 MiB for key material; keys are a few KB
# A PEM private key with its body (libraries only name the markers; botocore's examples
# quote a truncated one in JSON, with escaped line breaks).
PEM_KEY = re.compile(
    rb"-----BEGIN ([A-Z]+ )?PRIVATE KEY-----\r?\n(?:[A-Za-z0-9+/=]{40,}\r?\n)+"
    rb"[A-Za-z0-9+/=]*\r?\n?-----END ([A-Z]+ )?PRIVATE KEY-----"
)


@dataclass
class ImageFiles:
    """One pass over the image's file system (docker export of a created container)."""

    paths: list[str] = field(default_factory=list)
    private_keys: list[str] = field(default_factory=list)
    distributions: set[str] = field(default_factory=set)


def normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def read_files(image: str) -> ImageFiles:
    """Raises: SmokeFailed when the image cannot be exported."""
    container = run(["docker", "create", image]).stdout.strip()
    files = ImageFiles()
    try:
        with subprocess.Popen(["docker", "export", container], stdout=subprocess.PIPE) as proc:
            assert proc.stdout is not None
            with tarfile.open(fileobj=proc.stdout, mode="r|") as tar:
                for member in tar:
                    path = member.name.removeprefix("./")
                    files.paths.append(path)
                    dist = re.match(
                        rf"{SITE}python[\d.]+/site-packages/([^/]+)-[^-/]+\.dist-info/$", path + "/"
                    )
                    if member.isdir() and dist:
                        files.distributions.add(normalize(dist.group(1)))
                    if member.isfile() and member.size <= MAX_SCANNED:
                        data = tar.extractfile(member)
                        content = data.read() if data is not None else b""
                        # ELF files are left out: libgnutls carries self-test keys.
                        if not content.startswith(b"\x7fELF") and PEM_KEY.search(content):
                            files.private_keys.append(path)
            if proc.wait(timeout=120) != 0:
                raise SmokeFailed(f"docker export {container} failed")
    finally:
        run(["docker", "rm", container], check=False)
    return files


def requirement_names(text: str) -> set[str]:
    names = set()
    for line in text.splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)", line)
        if match:
            names.add(normalize(match.group(1)))
    return names


def dev_only() -> set[str]:
    """Distributions of the dev group that the runtime does not also need, and build tools."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    dev = {
        normalize(re.split(r"[\s\[<>=!~;]", d, maxsplit=1)[0])
        for d in project["dependency-groups"]["dev"]
    }
    runtime = run(
        [
            "uv",
            "export",
            "--frozen",
            "--no-dev",
            "--no-emit-workspace",
            "--no-hashes",
            "--no-header",
            "--no-annotate",
        ],
        timeout=60,
    ).stdout
    return (dev - requirement_names(runtime)) | BUILD_TOOLS


def check_image(checks: Checks, image: str, secrets: list[str]) -> None:
    """Checks the image's configuration and files; `secrets` must appear nowhere in it."""
    info = json.loads(run(["docker", "image", "inspect", image]).stdout)[0]
    config = info["Config"]
    size = int(info["Size"])
    checks.note("image size", f"{size / 1e6:.0f} MB ({size} bytes)")
    checks.equal(
        config.get("User"), "10001:10001", "the image runs as uid:gid 10001:10001, not root"
    )
    uid = run(["docker", "run", "--rm", "--entrypoint", "id", image, "-u"]).stdout.strip()
    checks.equal(uid, "10001", "a container of the image runs as uid 10001")
    test = (config.get("Healthcheck") or {}).get("Test") or []
    checks.ok(any("/readyz" in part for part in test), "the image's HEALTHCHECK calls /readyz")
    env_names = [e.split("=", 1)[0] for e in config.get("Env") or []]
    checks.equal(
        [n for n in env_names if SECRET_NAMES.search(n)],
        [],
        "no secret-looking variable in the image",
    )
    history = run(["docker", "history", "--no-trunc", "--format", "{{.CreatedBy}}", image]).stdout
    checks.equal(
        [s for s in secrets if s and s in history + json.dumps(config)],
        [],
        "no secret of the stack in the image's config or build history",
    )

    files = read_files(image)
    checks.note("files in the image", str(len(files.paths)))
    checks.equal(files.private_keys, [], "no PEM private key in any file of the image (but ELF)")
    etc_vouch = [p for p in files.paths if p.startswith("etc/vouch/")]
    checks.equal(etc_vouch, [], "/etc/vouch is empty: keys and policy are mounted at run time")
    checks.equal(
        [p for p in files.paths if COMPILERS.match(p)], [], "no compiler or linker in the image"
    )
    pip = [p for p in files.paths if re.search(r"(^|/)\.cache/pip(/|$)|^opt/vouch/bin/pip", p)]
    checks.equal(pip, [], "no pip and no pip cache in the runtime")
    leftovers = sorted(
        {p.split("/")[0] + "/" + p.split("/")[1] for p in files.paths if p.startswith(LEFTOVERS)}
    )
    checks.equal(leftovers, [], "no build-stage leftovers (sources, wheels, uv, build backend)")
    checks.ok("vouch-broker" in files.distributions, "vouch-broker is installed in /opt/vouch")
    licence = [
        p for p in files.paths if re.search(r"/vouch_broker-[^/]+\.dist-info/licenses/LICENSE$", p)
    ]
    checks.equal(len(licence), 1, "the installed wheel carries the Apache-2.0 LICENSE")
    unwanted = sorted(files.distributions & dev_only())
    checks.equal(
        unwanted, [], "no dev dependency or build tool installed (pytest, moto, uv, pip, ...)"
    )
    checks.note("distributions in /opt/vouch", str(len(files.distributions)))
