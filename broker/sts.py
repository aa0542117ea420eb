"""The one place that calls AWS STS: AssumeRoleWithWebIdentity with bounded, jittered retries.

botocore's own retries are off so that this module alone decides how long a request may wait;
AWS error codes pass through as data, never the raw response (it carries secrets on success).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING

import boto3
from botocore import UNSIGNED
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from broker.errors import StsRejected, StsUnavailable

if TYPE_CHECKING:
    from mypy_boto3_sts import STSClient

POOL = 32  # concurrent STS calls per worker: threads and HTTP connections alike
RETRYABLE = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "IDPCommunicationError",
        "InternalFailure",
        "ServiceUnavailable",
        "InternalError",
    }
)


@dataclass(frozen=True)
class AwsCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str
    expiration: datetime

    def process_document(self) -> dict[str, object]:
        """The AWS `credential_process` JSON document (Version 1)."""
        return {
            "Version": 1,
            "AccessKeyId": self.access_key_id,
            "SecretAccessKey": self.secret_access_key,
            "SessionToken": self.session_token,
            "Expiration": self.expiration.isoformat().replace("+00:00", "Z"),
        }

    def __repr__(self) -> str:  # never print secrets, even by accident
        return f"AwsCredentials({self.access_key_id[:4]}…, expires {self.expiration.isoformat()})"


class Sts:
    """AssumeRoleWithWebIdentity through a thread (boto3 is synchronous), with retries."""

    def __init__(
        self,
        *,
        region: str,
        endpoint_url: str | None,
        attempts: int = 3,
        base_delay_s: float = 0.1,
        timeout_s: float = 2.5,
        on_call: Callable[[str], None] = lambda _outcome: None,
    ) -> None:
        # botocore logs request bodies (the web identity token) and responses (secret keys)
        # at DEBUG: keep it quiet whatever level the operator sets (invariant 8).
        for name in ("botocore", "boto3", "urllib3"):
            logging.getLogger(name).setLevel(logging.WARNING)
        # Web-identity calls are unsigned: no AWS credentials are needed or used.
        self.client: STSClient = boto3.session.Session().client(
            "sts",
            region_name=region,
            endpoint_url=endpoint_url,
            config=Config(
                signature_version=UNSIGNED,
                retries={"total_max_attempts": 1, "mode": "standard"},  # we retry ourselves
                connect_timeout=timeout_s,
                read_timeout=timeout_s,
                max_pool_connections=POOL,
            ),
        )
        self.attempts = attempts
        self.base_delay_s = base_delay_s
        self.on_call = on_call  # counts each AWS call by outcome (metrics)
        # Our own threads: asyncio's default pool is small (cores + 4) and also resolves host
        # names for new Redis connections, so a slow STS must not be able to starve it.
        self.pool = ThreadPoolExecutor(POOL, thread_name_prefix="vouch-sts")

    async def assume(
        self, *, role_arn: str, session_name: str, token: str, policy: str, duration_s: int
    ) -> AwsCredentials:
        """Raises: StsUnavailable (throttled or down after retries), StsRejected (refused)."""
        for attempt in range(self.attempts):
            try:
                answer = await asyncio.get_running_loop().run_in_executor(
                    self.pool,
                    partial(
                        self.client.assume_role_with_web_identity,
                        RoleArn=role_arn,
                        RoleSessionName=session_name,
                        WebIdentityToken=token,
                        Policy=policy,
                        DurationSeconds=duration_s,
                    ),
                )
            except ClientError as exc:
                code = str(exc.response.get("Error", {}).get("Code", "Unknown"))
                message = str(exc.response.get("Error", {}).get("Message", ""))[:300]
                self.on_call("retryable" if code in RETRYABLE else "rejected")
                if code not in RETRYABLE:
                    raise StsRejected(f"STS refused: {code}: {message}", aws_code=code) from None
                last = code
            except BotoCoreError as exc:
                self.on_call("unreachable")
                last = type(exc).__name__
            else:
                self.on_call("ok")
                c = answer["Credentials"]
                return AwsCredentials(
                    c["AccessKeyId"], c["SecretAccessKey"], c["SessionToken"], c["Expiration"]
                )
            if attempt + 1 < self.attempts:
                await asyncio.sleep(random.uniform(0, self.base_delay_s * 2**attempt))  # noqa: S311
        raise StsUnavailable(
            f"STS unavailable after {self.attempts} attempts ({last})", retry_after=2, aws_code=last
        )
