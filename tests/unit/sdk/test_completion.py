"""`vouch completion SHELL`: a static script that the shell itself runs to complete."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from vouch_delegate.cli import main

pytestmark = pytest.mark.unit

COMMANDS = (
    "enroll login logout status models usage delegate agent-key credential exec aws-profile admin"
    " completion"
)

# Drives the script's function as bash's `complete -F` would, one command line per call.
DRIVER = r"""
source "$1"
complete_line() {
  COMP_WORDS=("$@"); COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; COMPREPLY=()
  _shtab_vouch vouch "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"
  echo "${COMPREPLY[*]}"
}
complete_line vouch ""
complete_line vouch delegate ""
complete_line vouch admin inv
complete_line vouch credential aws --tok
complete_line vouch credential aws --token-file ag
complete_line vouch --js
complete -p vouch
"""


def script(shell: str, capsys: pytest.CaptureFixture[str]) -> str:
    assert main(["completion", shell]) == 0
    return capsys.readouterr().out


def test_the_bash_script_is_valid_and_completes_commands_options_and_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    completion = tmp_path / "vouch.bash"
    completion.write_text(script("bash", capsys))
    subprocess.run(["bash", "-n", str(completion)], check=True)
    (tmp_path / "agent.token").touch()
    ran = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", DRIVER, "driver", str(completion)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    assert ran.stdout.splitlines() == [
        COMMANDS,
        "approve deny requests list revoke",
        "invite invites",
        "--token-file",
        "agent.token",  # a file name after an option that takes a path
        "--json",
        "complete -o bashdefault -F _shtab_vouch vouch",  # sourcing it registers it
    ]


def test_the_zsh_and_tcsh_scripts_name_every_command(capsys: pytest.CaptureFixture[str]) -> None:
    zsh = script("zsh", capsys)
    assert zsh.startswith("#compdef vouch\n")
    block = zsh.split("_shtab_vouch_commands()")[1].split("\n}")[0]
    listed = re.findall(r"^\s+([a-z-]+):'", block, re.M)
    assert listed == sorted(COMMANDS.split())
    tcsh = script("tcsh", capsys)
    assert "\ncomplete vouch " in tcsh
    assert all(command in tcsh for command in COMMANDS.split())


def test_an_unknown_shell_is_refused_with_the_choices(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as caught:
        main(["completion", "powershell"])
    assert caught.value.code == 6
    err = capsys.readouterr().err
    assert "vouch: argument SHELL: invalid choice: 'powershell'" in err
    assert all(shell in err.rsplit("choose from", 1)[1] for shell in ("bash", "zsh", "tcsh"))
