"""models: what the org policy lets you use yourself and delegate to agents."""

from __future__ import annotations

import argparse
from typing import Any

from vouch_delegate._grant import format_duration
from vouch_delegate._messages import ModelInfo
from vouch_delegate.cli._context import Context
from vouch_delegate.cli._exit import OK
from vouch_delegate.cli._text import printable

EPILOG = """examples:
  vouch models
  vouch models --json

"yourself": `vouch credential aws` and the profile `vouch aws-profile` writes (your own
credentials, up to the time shown); "delegate": `vouch delegate --model M` (a delegation
of up to the time shown). Names are what --model takes."""


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    models = commands.add_parser(
        "models",
        parents=[common],
        help="the models you may use yourself and delegate",
        description="The models the org policy lets you use yourself and delegate to agents.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    models.set_defaults(handler=run_models)


def run_models(ctx: Context) -> int:
    listed = ctx.client().list_models()
    if not listed.models:
        text = f"The org policy lets {printable(listed.email)} use and delegate no model."
        ctx.emit(listed, text)
        return OK
    width = max(len("MODEL"), *(len(printable(m.name)) for m in listed.models))
    lines = [
        f"Models for {printable(listed.email)} (called in {printable(listed.region)}):",
        f"  {'MODEL':<{width}}  {'YOURSELF':<14}  DELEGATE",
        *(f"  {_row(m, width)}" for m in listed.models),
    ]
    ctx.emit(listed, "\n".join(lines))
    return OK


def _row(model: ModelInfo, width: int) -> str:
    own = _limit(model.use, model.use_max_duration_s)
    delegate = _limit(model.delegate, model.delegate_max_ttl_s)
    return f"{printable(model.name):<{width}}  {own:<14}  {delegate}"


def _limit(allowed: bool, seconds: int | None) -> str:
    if not allowed:
        return "no"
    return f"up to {format_duration(seconds)}" if seconds else "yes"
