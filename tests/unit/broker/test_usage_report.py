# ruff: noqa: E501  (tables are compared whole, one line of text per row)
"""Usage reports as people read them: the table, JSON and CSV, exact text; and the command."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest

from broker.cli import main
from broker.services import load_policy
from broker.settings import load_settings
from broker.usage import Report, csv_text, reports_for, table
from tests.unit.policies.invocation_records import PERSON_ARN, record

pytestmark = pytest.mark.unit


NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
LONG = "firstname.lastname@engineering.bigcompany.example.com"
SHORT_ARN = (
    "arn:aws:sts::123456789012:assumed-role/vouch-agents/"
    "dlg_AAAAAAAAAAAAAAAA.writer.firstname.lastname@engin,"
)


def write_records(path: Path, when: str = "2026-11-30T10:00:00Z") -> Path:
    lines = [
        record(
            "a",
            timestamp=when,
            tokens_in=1234,
            tokens_out=0,
            model="anthropic.claude-sonnet-4-5-20250929-v1:0",
        ),
        record("b", timestamp=when, arn=PERSON_ARN, tokens_in=1000, tokens_out=10),
        record("b", timestamp=when, arn=PERSON_ARN, tokens_in=1000, tokens_out=10),
        record(
            "c",
            timestamp=when,
            arn="arn:aws:iam::123456789012:user/ci",
            model="cohere.command-r-v1:0",
        ),
        record("old", timestamp="2026-11-28T10:00:00Z"),
    ]
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\ngarbage\n")
    return path


def report_of(source: Path, by: str, email: str | None = None) -> Report:
    settings = load_settings(env={})
    catalog, org = load_policy(settings)
    reports = reports_for(settings, catalog, org)
    report, first = asyncio.run(
        reports.report(since_s=86_400, by=by, email=email, source=str(source), now=NOW)  # type: ignore[arg-type]
    )
    assert first == "not JSON: JSON is malformed: invalid character (byte 0)"
    return report


def test_the_table_by_delegation(tmp_path: Path) -> None:
    text = table(report_of(write_records(tmp_path / "r.jsonl"), "delegation"))
    assert text == (
        "Bedrock usage from 2026-11-29T12:00:00Z to 2026-11-30T12:00:00Z, by delegation:\n"
        "DELEGATION            PERSON             AGENT       RECORDS  INPUT  OUTPUT  CACHE READ  CACHE WRITE  COST (USD)  UNPRICED\n"
        "dlg_3kq0b4Y2m9T1xVwA  alice@example.com  researcher        1   1234       0           0            0    0.003702         0\n"
        "-                     alice@example.com  (self)            1   1000      10           0            0    0.001050         0\n"
        "(not vouch)                                                1   1234     100           0            0           -         1\n"
        "TOTAL                                                      3   3468     110           0            0    0.004752         1\n"
        "unpriced (tokens counted, cost unknown): cohere.command-r-v1:0; add them to the prices file (VOUCH_PRICES_FILE)\n"
        "1 repeated delivery of a requestId not counted\n"
        "1 line not an invocation log record (not counted)\n"
    )


def test_a_persons_own_report_holds_only_theirs(tmp_path: Path) -> None:
    text = table(report_of(write_records(tmp_path / "r.jsonl"), "person", "alice@example.com"))
    assert text.splitlines()[:4] == [
        "Bedrock usage of alice@example.com from 2026-11-29T12:00:00Z to 2026-11-30T12:00:00Z, by person:",
        "PERSON             RECORDS  INPUT  OUTPUT  CACHE READ  CACHE WRITE  COST (USD)  UNPRICED",
        "alice@example.com        2   2234      10           0            0    0.004752         0",
        "TOTAL                    2   2234      10           0            0    0.004752         0",
    ]
    assert report_of(write_records(tmp_path / "r.jsonl"), "person", "bob@example.com").rows == []


def test_json_has_exact_costs_as_decimal_strings(tmp_path: Path) -> None:
    report = report_of(write_records(tmp_path / "r.jsonl"), "model")
    data = json.loads(msgspec.json.encode(report))
    assert data["rows"][0] == {
        "person": None,
        "agent": None,
        "delegation": None,
        "model": "anthropic.claude-sonnet-4-5-20250929-v1:0",
        "foreign": False,
        "records": 1,
        "input_tokens": 1234,
        "output_tokens": 0,
        "cache_read_tokens": 0,
        "cache_write_tokens": 0,
        "cost": "0.003702",
        "unpriced_records": 0,
    }
    assert (data["total"]["cost"], data["since"], data["until"]) == (
        "0.004752",
        "2026-11-29T12:00:00Z",
        "2026-11-30T12:00:00Z",
    )
    assert (data["duplicates"], data["invalid"], data["unpriced_models"]) == (
        1,
        1,
        ["cohere.command-r-v1:0"],
    )


def test_csv_rows(tmp_path: Path) -> None:
    assert csv_text(report_of(write_records(tmp_path / "r.jsonl"), "agent")) == (
        "person,agent,delegation,model,foreign,records,input_tokens,output_tokens,"
        "cache_read_tokens,cache_write_tokens,cost,unpriced_records\n"
        "alice@example.com,researcher,,,false,1,1234,0,0,0,0.003702,0\n"
        "alice@example.com,,,,false,1,1000,10,0,0,0.00105,0\n"
        ",,,,true,1,1234,100,0,0,0,1\n"
    )


def test_the_command_reads_a_file_now(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    source = write_records(tmp_path / "r.jsonl", when=now)
    assert main(["usage", "--from", str(source), "--by", "agent", "--csv"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[1:] == [
        "alice@example.com,researcher,,,false,1,1234,0,0,0,0.003702,0",
        "alice@example.com,,,,false,1,1000,10,0,0,0.00105,0",
        ",,,,true,1,1234,100,0,0,0,1",
    ]
    assert (
        err
        == "vouch-broker usage: skipped a line: not JSON: JSON is malformed: invalid character (byte 0)\n"
    )
    assert main(["usage", "--from", str(source), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["total"]["cost"] == "0.004752"
    assert main(["usage", "--from", str(source), "--since", "1h"]) == 0
    assert capsys.readouterr().out.splitlines()[2].startswith("alice@example.com        2   2234")


def test_the_command_without_a_source_or_with_a_bad_one_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("VOUCH_USAGE_SOURCE", raising=False)
    assert main(["usage"]) == 6
    assert capsys.readouterr().err == (
        "vouch-broker usage: no source: pass --from FILE|DIR|s3://BUCKET/PREFIX|"
        "cloudwatch[:GROUP] or set VOUCH_USAGE_SOURCE\n"
    )
    assert main(["usage", "--from", str(tmp_path / "nope")]) == 6
    assert capsys.readouterr().err == (
        f"vouch-broker usage: no such file or directory: {tmp_path / 'nope'}\n"
    )
    assert main(["usage", "--from", str(tmp_path), "--since", "soon"]) == 6
    assert capsys.readouterr().err == (
        "vouch-broker usage: --since 'soon' is not a duration (24h, 7d, 90m)\n"
    )


def test_a_shortened_name_is_recognised_in_its_persons_own_report(tmp_path: Path) -> None:
    from policies.attribution import email_digest

    arn = SHORT_ARN.replace("engin,", f"engi,{email_digest(LONG)}")
    (tmp_path / "r.jsonl").write_text(json.dumps(record("s", arn=arn)) + "\ngarbage\n")
    mine = report_of(tmp_path / "r.jsonl", "delegation", LONG)
    assert [(r.person, r.delegation, r.agent) for r in mine.rows] == [
        (LONG, "dlg_AAAAAAAAAAAAAAAA", "writer")
    ]
    everyone = report_of(tmp_path / "r.jsonl", "person")
    assert [r.person for r in everyone.rows] == [f"firstname.lastname@engi...,{email_digest(LONG)}"]
