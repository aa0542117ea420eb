"""completion: the shell's tab completion for vouch, a static script made by shtab."""

from __future__ import annotations

import argparse
from typing import Any

from vouch_delegate.cli._context import Context
from vouch_delegate.cli._exit import OK

SHELLS = ("bash", "zsh", "tcsh")
# Options whose value is a path: the shell offers file names there.
_FILE_OPTIONS = frozenset({"token_file", "out", "code_file"})

EPILOG = """examples:
  vouch completion bash > ~/.local/share/bash-completion/completions/vouch
      (bash-completion loads it in new shells; or add to ~/.bashrc:
       eval "$(vouch completion bash)")
  vouch completion zsh > ~/.zfunc/_vouch
      (with `fpath=(~/.zfunc $fpath); autoload -U compinit && compinit` in ~/.zshrc)

Commands, subcommands and options complete, and file names after --token-file, --out and
--code-file. Generate the script again after upgrading vouch."""


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    completion = commands.add_parser(
        "completion",
        parents=[common],
        help="print the shell completion script (bash, zsh, tcsh)",
        description="Print a tab-completion script for vouch in SHELL's language.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    completion.add_argument("shell", choices=SHELLS, metavar="SHELL", help=" | ".join(SHELLS))
    completion.set_defaults(handler=run_completion)


def run_completion(ctx: Context) -> int:
    import shtab

    from vouch_delegate.cli import build_parser  # the whole command tree, this module's too

    parser = build_parser()
    _mark_files(parser, shtab.FILE)
    ctx.out.write(shtab.complete(parser, shell=ctx.args.shell))
    ctx.out.flush()
    return OK


def _mark_files(parser: argparse.ArgumentParser, files: object) -> None:
    """Tell shtab which options take a file name, in `parser` and every subcommand's."""
    for action in parser._actions:
        if action.dest in _FILE_OPTIONS:
            action.complete = files  # type: ignore[attr-defined]  # shtab reads this attribute
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _mark_files(sub, files)
