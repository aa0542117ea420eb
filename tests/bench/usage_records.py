"""Invocation log records per second: parse, and parse + tally + price + group.

    uv run python -m tests.bench.usage_records [--records 200000]

Records carry a ~1 KB prompt body each, as Bedrock writes them (the parser skips it), over
50 sessions (agents, people, foreign) and 4 models, 1 in 10 delivered twice. Prints one line
per stage; the figures are in docs/usage.md.
"""

from __future__ import annotations

import argparse
import gzip
import json
import time
from datetime import UTC, datetime

from broker.services import load_policy
from broker.settings import load_settings
from broker.usage import roles_of
from policies.attribution import agent_session_name, attribute, person_session_name
from policies.invocation_log import InvocationRecord, parse_all
from policies.prices import PriceTable
from policies.usage import Tally, summarize

MODELS = (
    "us.anthropic.claude-haiku-4-5-20251001-v1:0",
    "anthropic.claude-sonnet-4-5-20250929-v1:0",
    "amazon.nova-micro-v1:0",
    "cohere.command-r-v1:0",
)


def blob(count: int) -> bytes:
    arns = [
        "arn:aws:sts::123456789012:assumed-role/vouch-agents/"
        + agent_session_name(f"dlg_{i:016d}", f"agent{i % 7}", f"p{i % 9}@example.com")
        for i in range(40)
    ]
    arns += [
        "arn:aws:sts::123456789012:assumed-role/vouch-people/"
        + person_session_name(f"p{i}@example.com")
        for i in range(9)
    ]
    arns.append("arn:aws:iam::123456789012:user/ci")
    prompt = "x" * 1000
    stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    lines = []
    for i in range(count):
        rid = f"req-{i - 1 if i % 10 == 9 else i}"
        lines.append(
            json.dumps(
                {
                    "schemaType": "ModelInvocationLog",
                    "schemaVersion": "1.0",
                    "timestamp": stamp,
                    "accountId": "123456789012",
                    "identity": {"arn": arns[i % len(arns)]},
                    "region": "us-east-1",
                    "requestId": rid,
                    "operation": "Converse",
                    "modelId": MODELS[i % len(MODELS)],
                    "input": {
                        "inputContentType": "application/json",
                        "inputBodyJson": {
                            "messages": [{"role": "user", "content": [{"text": prompt}]}]
                        },
                        "inputTokenCount": 1000 + i % 500,
                        "cacheReadInputTokenCount": i % 3,
                    },
                    "output": {"outputBodyJson": {"text": "ok"}, "outputTokenCount": 100 + i % 50},
                }
            )
        )
    return "\n".join(lines).encode()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--records", type=int, default=200_000)
    args = parser.parse_args()
    text = blob(args.records)
    packed = gzip.compress(text)
    settings = load_settings(env={})
    catalog, org = load_policy(settings)
    roles, prices = roles_of(org), PriceTable.builtin()

    started = time.perf_counter()
    parsed = [r for r in parse_all([text]) if isinstance(r, InvocationRecord)]
    parse_s = time.perf_counter() - started

    started = time.perf_counter()
    tally = Tally()
    for record in parse_all([packed]):
        if isinstance(record, InvocationRecord):
            tally.add(record)
    rows = summarize(
        tally.records(),
        "delegation",
        lambda arn: attribute(arn, roles),
        lambda model: prices.price_of(model, catalog),
    )
    all_s = time.perf_counter() - started
    n = len(parsed)
    print(f"{n} records ({len(text) / n:.0f} bytes each), {len(tally)} distinct, {len(rows)} rows")
    print(f"parse:                                {n / parse_s:>10,.0f} records/s")
    print(f"gunzip + parse + tally + price + group: {n / all_s:>10,.0f} records/s")


if __name__ == "__main__":
    main()
