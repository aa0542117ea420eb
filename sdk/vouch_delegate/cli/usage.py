"""usage: what your Bedrock calls and your agents' cost, from the invocation logs."""

from __future__ import annotations

import argparse
from datetime import datetime
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any

from vouch_delegate._messages import UsageReport, UsageRow
from vouch_delegate.cli._context import Context
from vouch_delegate.cli._exit import OK
from vouch_delegate.cli._text import printable

EPILOG = """examples:
  vouch usage
  vouch usage --since 7d --json

One row per delegation, and one for your own use ("(self)"): records, tokens, and the cost
at the broker's prices (rounded here; exact under --json). Bedrock delivers its logs minutes
after each call, so the last minutes may be missing."""

_HEADS = ("DELEGATION", "AGENT", "RECORDS", "INPUT", "OUTPUT", "CACHE READ", "CACHE WRITE")
_KEYS = 2


def register(commands: Any, common: argparse.ArgumentParser) -> None:
    usage = commands.add_parser(
        "usage",
        parents=[common],
        help="what your Bedrock use and your agents' cost",
        description="Your Bedrock use and your agents', per delegation, from the broker's "
        "reading of Bedrock's model invocation logs.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    usage.add_argument(
        "--since", default="24h", metavar="DURATION", help="how far back (default 24h)"
    )
    usage.set_defaults(handler=run_usage)


def run_usage(ctx: Context) -> int:
    report = ctx.client().usage(since=ctx.args.since)
    ctx.emit(report, table(report))
    return OK


def table(report: UsageReport) -> str:
    """The report as a text table, costs rounded to 6 decimals."""
    heads = [*_HEADS, f"COST ({printable(report.currency)})", "UNPRICED"]
    body = [_keys(row) + _numbers(row) for row in report.rows]
    body.append(["TOTAL", "", *_numbers(report.total)])
    widths = [max(len(line[i]) for line in [heads, *body]) for i in range(len(heads))]

    def line(cells: list[str]) -> str:
        padded = [
            cell.ljust(width) if i < _KEYS else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ]
        return "  ".join(padded).rstrip()

    whose = f" of {printable(report.email)}" if report.email else ""
    out = [
        f"Bedrock usage{whose} from {_stamp(report.since)} to {_stamp(report.until)}:",
        line(heads),
        *(line(cells) for cells in body),
    ]
    if report.unpriced_models:
        models = ", ".join(printable(m) for m in report.unpriced_models)
        out.append(f"unpriced (tokens counted, cost unknown): {models}")
    return "\n".join(out)


def _stamp(moment: datetime) -> str:
    return str(moment.strftime("%Y-%m-%dT%H:%M:%SZ"))


def _keys(row: UsageRow) -> list[str]:
    if row.foreign:
        return ["(not vouch)", ""]
    if row.agent == "":
        return ["-", "(self)"]
    return [printable(row.delegation or ""), printable(row.agent or "")]


def _numbers(row: UsageRow) -> list[str]:
    priced = row.records - row.unpriced_records
    cost = (
        format(row.cost.quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN), "f")
        if priced or not row.records
        else "-"
    )
    return [
        str(row.records),
        str(row.input_tokens),
        str(row.output_tokens),
        str(row.cache_read_tokens),
        str(row.cache_write_tokens),
        cost,
        str(row.unpriced_records),
    ]
