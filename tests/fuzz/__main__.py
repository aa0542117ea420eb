"""`python -m tests.fuzz`: the long schema fuzz against a broker started here (see README.md)."""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import warnings
from pathlib import Path

from vouch_delegate.authenticators import NotHardwareWarning

from tests.fuzz.runner import MODES, SETTINGS, credentials, fuzz
from tests.harness.broker import BrokerServer, broker_settings
from tests.harness.services import MotoServer, RedisServer
from tests.harness.sts_gate import StsGate
from tests.integration.conftest import wire_aws


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.fuzz", description=__doc__)
    parser.add_argument(
        "--examples",
        type=int,
        default=200,
        help="cases per operation, mode and set of credentials (default 200)",
    )
    parser.add_argument("--seed", type=int, default=None, help="Hypothesis seed (default: random)")
    parser.add_argument("--mode", choices=MODES, action="append", help="default: both")
    parser.add_argument(
        "--operation", action="append", help='only operations containing this, e.g. "POST /v1/"'
    )
    args = parser.parse_args(argv)
    warnings.simplefilter("ignore", NotHardwareWarning)  # the fuzz's people use software keys
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    with tempfile.TemporaryDirectory(prefix="vouch-fuzz-") as tmp:
        workdir = Path(tmp)
        redis = RedisServer(workdir / "redis").start()
        moto = MotoServer().start()
        gate = StsGate(moto).start()
        server = BrokerServer(
            broker_settings(workdir, redis.url, aws={"endpoint_url": gate.url}, **SETTINGS)
        ).start()
        try:
            wire_aws(server, gate)
            print(f"fuzzing {server.url} with seed {seed}, {args.examples} examples per run")
            report = fuzz(
                f"http://127.0.0.1:{server.port}",
                credentials(server, workdir),
                examples=args.examples,
                seed=seed,
                modes=args.mode or MODES,
                operations=args.operation,
            )
        finally:
            server.stop()
            gate.stop()
            moto.stop()
            redis.stop()
    print(report.summary())
    print(f"seed {seed}: rerun with --seed {seed} --examples {args.examples}")
    return 1 if report.findings else 0


if __name__ == "__main__":
    sys.exit(main())
