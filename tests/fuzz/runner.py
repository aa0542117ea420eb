"""Fuzz every operation of the broker's OpenAPI schema with schemathesis and judge each answer.

Cases are generated from `/schema/openapi.json`, valid ones (positive mode) and ones that break
the schema (negative mode), and each is sent once per set of credentials (none, garbage, a human
session, an admin session, an agent token). Operations that take a body also get raw bytes no
schema describes (`raw_bodies`: arbitrary bytes, JSON with invalid UTF-8 spliced into it,
odd content types), which schemathesis never sends. The oracle is the broker's error contract
(docs/design.md section 5 and invariant 9):

- no answer of 500 or above (the fuzz broker has Redis and STS up, so no 503 is excusable);
- every error is an RFC 9457 problem: `application/problem+json`, with `type` (a
  ``urn:vouch:problem:<slug>``), `title`, `status` (the HTTP status) and `detail`;
- the security headers are on every answer.

A case that breaks the contract is recorded as a `Finding` with a curl command to reproduce
it; generation never stops at the first one, so a run reports everything it saw.
"""

from __future__ import annotations

import json
import re
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from hypothesis import HealthCheck, Phase, Verbosity, given, settings
from hypothesis import seed as hypothesis_seed
from hypothesis import strategies as st
from hypothesis.errors import HypothesisException

from tests.harness.broker import BrokerServer
from tests.harness.people import Human
from tests.integration.conftest import make_invite

PROBLEM_JSON = "application/problem+json"
PROBLEM_PREFIX = "urn:vouch:problem:"
SECURITY_HEADERS = (
    "x-content-type-options",
    "referrer-policy",
    "x-frame-options",
    "content-security-policy",
)
MODES = ("positive", "negative")
# Rate limits and pending bounds high enough that cases reach the code behind them.
SETTINGS: dict[str, Any] = {
    "rate_login_per_min": 1_000_000,
    "rate_requests_per_min": 1_000_000,
    "rate_approvals_per_min": 1_000_000,
    "rate_polls_per_min": 1_000_000,
    "rate_usage_per_min": 1_000_000,
    "request_max_pending_per_person": 100,
    "request_max_pending_per_address": 1000,
}


@dataclass(frozen=True)
class Finding:
    """One answer that broke the contract."""

    operation: str
    credentials: str
    mode: str
    status: int
    reason: str
    reproduce: str


@dataclass
class Report:
    """What a run sent and saw."""

    cases: Counter[str] = field(default_factory=Counter)  # by "METHOD /path"
    raw_cases: Counter[str] = field(default_factory=Counter)  # raw-byte bodies, by operation
    statuses: Counter[int] = field(default_factory=Counter)
    slugs: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    not_generated: list[str] = field(default_factory=list)  # (operation, mode) with no inputs
    seconds: float = 0.0

    @property
    def total(self) -> int:
        return sum(self.cases.values())

    def summary(self) -> str:
        lines = [
            f"{self.total} cases over {len(self.cases)} operations in {self.seconds:.1f} s "
            f"(+{sum(self.raw_cases.values())} raw-byte bodies over {len(self.raw_cases)}); "
            f"{len(self.findings)} findings",
            "statuses: " + ", ".join(f"{k}: {v}" for k, v in sorted(self.statuses.items())),
            "problems: " + ", ".join(f"{k}: {v}" for k, v in self.slugs.most_common()),
        ]
        lines += [f"  {n:6d}  {op}" for op, n in sorted(self.cases.items())]
        for finding in self.findings[:50]:
            lines.append(
                f"FINDING {finding.operation} [{finding.credentials}, {finding.mode}] "
                f"{finding.status}: {finding.reason}\n    {finding.reproduce}"
            )
        return "\n".join(lines)


def credentials(server: BrokerServer, workdir: Path) -> dict[str, str | None]:
    """One bearer token of each kind a caller may hold, from real ceremonies on `server`."""
    made: dict[str, str | None] = {"none": None, "garbage": "not.a.token"}
    for who, email in (("session", "alice@example.com"), ("admin", "admin@example.com")):
        human = Human(
            f"http://127.0.0.1:{server.port}", server.url, email, workdir / f"{who}.key.json"
        )
        human.enroll(make_invite(server.settings, email))
        made[who] = human.login()
        if who == "session":
            made["agent"] = str(human.delegate("researcher", ["us.claude-haiku-4-5"]).token)
    return made


def problems_in(status: int, headers: Mapping[str, str], body: bytes) -> list[str]:
    """What is wrong with one answer under the broker's error contract (empty: nothing)."""
    wrong = [f"missing security header {h}" for h in SECURITY_HEADERS if h not in headers]
    if status >= 500:
        wrong.append("server error")
    if status < 400:
        return wrong
    if not headers.get("content-type", "").startswith(PROBLEM_JSON):
        return [*wrong, f"error is not problem+json ({headers.get('content-type')})"]
    try:
        problem = json.loads(body)
    except ValueError:
        return [*wrong, "problem body is not JSON"]
    if not isinstance(problem, dict):
        return [*wrong, "problem body is not an object"]
    for member in ("type", "title", "detail"):
        if not isinstance(problem.get(member), str) or not problem[member]:
            wrong.append(f"problem without a {member}")
    if problem.get("status") != status:
        wrong.append(f"problem status {problem.get('status')!r} is not the HTTP {status}")
    if not str(problem.get("type", "")).startswith(PROBLEM_PREFIX):
        wrong.append(f"problem type {problem.get('type')!r} is not a vouch slug")
    return wrong


def closed_objects(node: Any) -> Any:
    """The schema with `additionalProperties: false` on every object that lists properties.

    The broker's bodies refuse unknown fields (msgspec forbid_unknown_fields) but Litestar's
    schema does not say so; without this, most "valid" cases carry a stray field and stop at
    the 400 for it instead of reaching the handler.
    """
    if isinstance(node, list):
        return [closed_objects(item) for item in node]
    if not isinstance(node, dict):
        return node
    closed = {key: closed_objects(value) for key, value in node.items()}
    if isinstance(closed.get("properties"), dict):
        closed.setdefault("additionalProperties", False)
    return closed


def fuzz(
    base_url: str,
    credentials: Mapping[str, str | None],
    *,
    examples: int,
    seed: int,
    modes: Iterable[str] = MODES,
    operations: Iterable[str] | None = None,
    raw_bodies: bool = True,
) -> Report:
    """Fuzz every operation `examples` times per mode and set of credentials.

    `credentials` maps a name to a bearer token (None: no Authorization header).
    `operations` keeps only operations whose "METHOD /path" contains one of the strings.
    `raw_bodies` also sends `examples` raw-byte bodies per set of credentials to each
    operation that takes a body.
    """
    try:
        import schemathesis
    except ImportError as exc:  # pragma: no cover - a missing dev dependency
        raise RuntimeError(
            "schemathesis is not installed: it belongs in the dev dependency group "
            "(uv add --dev schemathesis), or run with `uv run --with schemathesis ...`"
        ) from exc
    raw = httpx.get(f"{base_url}/schema/openapi.json", timeout=10).raise_for_status().json()
    schema = schemathesis.openapi.from_dict(closed_objects(raw))
    report = Report()
    started = time.monotonic()
    wanted = list(operations or [])
    for result in schema.get_all_operations():
        operation = result.ok()
        name = f"{operation.method.upper()} {operation.path}"
        if wanted and not any(w in name for w in wanted):
            continue
        for mode in modes:
            strategy = operation.as_strategy(generation_mode=schemathesis.GenerationMode(mode))
            for who, token in credentials.items():
                _run(strategy, name, who, token, mode, base_url, examples, seed, report)
        takes_body = "requestBody" in raw["paths"][operation.path][operation.method.lower()]
        if raw_bodies and takes_body:
            for who, token in credentials.items():
                _run_raw(operation, name, who, token, base_url, examples, seed, report)
    report.seconds = time.monotonic() - started
    return report


def _run(
    strategy: Any,
    name: str,
    who: str,
    token: str | None,
    mode: str,
    base_url: str,
    examples: int,
    seed: int,
    report: Report,
) -> None:
    import requests

    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    session = requests.Session()

    @hypothesis_seed(seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
        verbosity=Verbosity.quiet,
    )
    @given(case=strategy)
    def check(case: Any) -> None:
        report.cases[name] += 1
        try:
            answer = case.call(base_url=base_url, session=session, headers=headers, timeout=15)
        except requests.RequestException as exc:
            report.findings.append(
                Finding(name, who, mode, 0, f"no answer: {exc!r}", _curl(case, headers))
            )
            return
        flat = {k: v[0] if isinstance(v, list) else v for k, v in answer.headers.items()}
        report.statuses[answer.status_code] += 1
        if answer.status_code >= 400 and flat.get("content-type", "").startswith(PROBLEM_JSON):
            report.slugs[str(json.loads(answer.content).get("type", "")).rsplit(":", 1)[-1]] += 1
        for reason in problems_in(answer.status_code, flat, answer.content):
            report.findings.append(
                Finding(name, who, mode, answer.status_code, reason, _curl(case, headers))
            )

    try:
        check()
    except HypothesisException as exc:  # e.g. no negative input exists for this operation
        report.not_generated.append(f"{name} [{mode}]: {type(exc).__name__}")
    finally:
        session.close()


# Byte sequences that are never valid UTF-8: stray continuation bytes, truncated sequences,
# encoded surrogates (CESU-8), overlong forms, and bytes beyond U+10FFFF.
NOT_UTF8 = (
    b"\x80",
    b"\xbf",
    b"\xc3",
    b"\xe2\x82",
    b"\xed\xa0\x80",
    b"\xc0\xaf",
    b"\xf5\x80",
    b"\xff\xfe",
)
CONTENT_TYPES = (
    "application/json",
    "application/json; charset=latin-1",
    "application/problem+json",
    "text/plain",
    "application/octet-stream",
    None,
)


@st.composite
def raw_bodies(draw: st.DrawFn) -> bytes:
    """A body no schema describes: arbitrary bytes, or JSON with invalid UTF-8 spliced in."""
    kind = draw(st.sampled_from(("bytes", "spliced", "bom")))
    if kind == "bytes":
        return draw(st.binary(max_size=512))
    document = draw(
        st.dictionaries(
            st.sampled_from(("email", "models", "agent", "challenge_id", "credential", "code"))
            | st.text(max_size=8),
            st.text(max_size=16) | st.lists(st.text(max_size=8), max_size=3) | st.none(),
            max_size=4,
        )
    )
    text = json.dumps(document, ensure_ascii=False).encode()
    if kind == "bom":  # a byte order mark in front of otherwise good JSON
        return draw(st.sampled_from((b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"))) + text
    quotes = [m.end() for m in re.finditer(b'"', text)] or [0]
    at = draw(st.sampled_from(quotes))  # just inside a string (or a member name)
    return text[:at] + draw(st.sampled_from(NOT_UTF8)) + text[at:]


def _run_raw(
    operation: Any,
    name: str,
    who: str,
    token: str | None,
    base_url: str,
    examples: int,
    seed: int,
    report: Report,
) -> None:
    path = re.sub(r"\{[^}]+\}", "x", operation.path)  # path parameters do not matter here
    auth = {"Authorization": f"Bearer {token}"} if token is not None else {}
    client = httpx.Client(base_url=base_url, timeout=15)

    @hypothesis_seed(seed)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        phases=[Phase.explicit, Phase.generate],
        verbosity=Verbosity.quiet,
    )
    @given(body=raw_bodies(), content_type=st.sampled_from(CONTENT_TYPES))
    def check(body: bytes, content_type: str | None) -> None:
        report.raw_cases[name] += 1
        headers = {**auth, **({"content-type": content_type} if content_type else {})}
        escaped = "".join(f"\\x{byte:02x}" for byte in body)  # printf's own escapes
        reproduce = (
            f"printf '{escaped}' | "
            f"curl -X {operation.method.upper()} {base_url}{path} "
            + (f"-H 'Content-Type: {content_type}' " if content_type else "")
            + ("-H 'Authorization: Bearer <token>' " if token is not None else "")
            + "--data-binary @-"
        )
        try:
            answer = client.request(operation.method.upper(), path, content=body, headers=headers)
        except httpx.HTTPError as exc:
            report.findings.append(Finding(name, who, "raw", 0, f"no answer: {exc!r}", reproduce))
            return
        report.statuses[answer.status_code] += 1
        if answer.status_code >= 400 and answer.headers.get("content-type", "").startswith(
            PROBLEM_JSON
        ):
            report.slugs[str(answer.json().get("type", "")).rsplit(":", 1)[-1]] += 1
        for reason in problems_in(answer.status_code, answer.headers, answer.content):
            report.findings.append(Finding(name, who, "raw", answer.status_code, reason, reproduce))

    try:
        check()
    finally:
        client.close()


def _curl(case: Any, headers: Mapping[str, str]) -> str:
    redacted = dict.fromkeys(headers, "Bearer <token>")  # tokens stay out of reports
    try:
        return str(case.as_curl_command(headers=redacted))
    except Exception as exc:  # reproduction is best effort
        return f"(no curl command: {exc!r})"
