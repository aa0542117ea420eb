"""The compose stack under test: docker compose (v2) or docker-compose (1.29) on a project."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.docker.checks import SmokeFailed, run


def compose_command() -> list[str]:
    """`docker compose` where the v2 plugin answers, else Debian's `docker-compose`.

    Raises:
        SmokeFailed: neither is installed.
    """
    if shutil.which("docker"):
        probe = subprocess.run(
            ["docker", "compose", "version"], capture_output=True, text=True, check=False
        )
        if probe.returncode == 0:
            return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    raise SmokeFailed(
        "neither `docker compose` nor `docker-compose` is installed "
        "(Debian: apt-get install docker-compose)"
    )


@dataclass
class Stack:
    """One compose project of docker/compose.yaml, isolated from docker/.env by --env-file."""

    compose_file: Path
    env_file: Path
    project: str
    env: Mapping[str, str]
    command: list[str] = field(default_factory=compose_command)

    def compose(
        self, *args: str, timeout: float = 300, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        argv = [
            *self.command,
            "--project-name",
            self.project,
            "--env-file",
            str(self.env_file),
            "--file",
            str(self.compose_file),
            "--profile",
            "dev",
            *args,
        ]
        return run(argv, env=self.env, timeout=timeout, check=check)

    def containers(self, service: str, *, all_states: bool = False) -> list[str]:
        """Ids of the service's containers (not one-off `run` containers), by compose labels."""
        argv = [
            "docker",
            "ps",
            "--quiet",
            "--filter",
            f"label=com.docker.compose.project={self.project}",
            "--filter",
            f"label=com.docker.compose.service={service}",
            "--filter",
            "label=com.docker.compose.oneoff=False",
        ]
        if all_states:
            argv.append("--all")
        return sorted(run(argv).stdout.split())

    def inspect(self, container: str) -> dict[str, object]:
        found = json.loads(run(["docker", "inspect", container]).stdout)
        return dict(found[0])

    def state(self, container: str) -> dict[str, object]:
        state = self.inspect(container)["State"]
        assert isinstance(state, dict)
        return state

    def health(self, container: str) -> str:
        health = self.state(container).get("Health")
        return str(health.get("Status")) if isinstance(health, dict) else "none"

    def name(self, container: str) -> str:
        return str(self.inspect(container)["Name"]).lstrip("/")

    def wait_healthy(self, service: str, count: int, timeout: float = 120) -> list[str]:
        """The service's `count` containers once all report healthy.

        Raises:
            SmokeFailed: not within `timeout`, with each container's last health log.
        """
        deadline = time.monotonic() + timeout
        while True:
            ids = self.containers(service)
            states = {c: self.health(c) for c in ids}
            if len(ids) == count and all(s == "healthy" for s in states.values()):
                return ids
            if time.monotonic() > deadline:
                raise SmokeFailed(
                    f"{service}: wanted {count} healthy containers, have "
                    f"{ {self.name(c): s for c, s in states.items()} }"
                )
            time.sleep(1)

    def wait_succeeded(self, service: str, timeout: float = 120) -> None:
        """Returns once the service's (one-shot) container has exited 0.

        Raises:
            SmokeFailed: not within `timeout` (its restart policy retries failures).
        """
        deadline = time.monotonic() + timeout
        last: dict[str, object] = {}
        while time.monotonic() < deadline:
            ids = self.containers(service, all_states=True)
            if ids:
                last = self.state(ids[0])
                if last.get("Status") == "exited" and last.get("ExitCode") == 0:
                    return
            time.sleep(1)
        raise SmokeFailed(
            f"{service} did not exit 0 within {timeout:g} s "
            f"(status {last.get('Status')}, exit code {last.get('ExitCode')})"
        )

    def exec(self, container: str, argv: Sequence[str], timeout: float = 60) -> str:
        return run(["docker", "exec", container, *argv], timeout=timeout).stdout

    def logs(self, tail: int = 60) -> str:
        return self.compose("logs", "--no-color", "--tail", str(tail), check=False).stdout
