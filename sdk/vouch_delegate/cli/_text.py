"""Text for the person's terminal: what a broker or an agent chose cannot redraw it.

Every field that came from the broker (and through it from an agent) goes through
`printable` before it is placed in a line, so it stays on that line; everything the CLI
writes for people then goes through `terminal_safe`, which escapes any control character
left, so an escape sequence is shown, never obeyed.
"""

from __future__ import annotations

import textwrap


def printable(value: object) -> str:
    """`value` on one line: every non-printable character (newlines too) as an escape."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(value))


def terminal_safe(text: str) -> str:
    """`text` with its own line breaks kept and every other control character escaped."""
    return "\n".join(printable(line) for line in text.split("\n"))


def wrapped(value: object, width: int = 56) -> list[str]:
    """Someone else's text, made `printable` and hard-wrapped to `width` columns.

    The caller frames every line after the first (a bar): a message padded with spaces
    would otherwise wrap on the terminal into a line that looks like the CLI's own output.
    """
    chunks = textwrap.wrap(
        printable(value),
        width,
        drop_whitespace=False,
        replace_whitespace=False,
        break_on_hyphens=False,
    )
    return chunks or [""]


AWS_WAIT_S = 10.0
"""How long `revoke` lets the broker wait for AWS to be told, unless --no-wait."""


def aws_line(status: str | None) -> str:
    """What a revocation's `aws_sessions` means for credentials already handed out."""
    match status:
        case "cut":
            return "AWS: its live sessions are denied (IAM applies the change within seconds)."
        case "pending":
            return (
                "AWS: not told yet; the broker keeps trying, and live sessions are denied once"
                " it has (new exchanges are refused already)."
            )
        case "disabled":
            return (
                "AWS: this broker cannot cut live sessions (it has no AWS credentials of its"
                " own); they last until they expire."
            )
        case _:
            return "AWS: this broker does not say whether live sessions are cut."
