"""The poll secret: what is stored opens nothing; only the secret opens the sealed token, for
its own request, unaltered."""

from __future__ import annotations

import base64

import pytest

from broker import poll_secret
from broker.delegation_requests import is_request_id, source_of
from broker.poll_secret import SealBroken, open_sealed, public_key, seal

pytestmark = pytest.mark.unit

TOKEN = "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhZ2VudC5uaWdodGx5LmFsaWNlQGV4YW1wbGUuY29tIn0.c2lnbmF0dXJl"
REQ = "dreq_AAAAAAAAAAAAAAAA"


def test_only_the_secret_opens_the_sealed_token_for_its_request() -> None:
    secret = poll_secret.new_secret()
    sealed = seal(TOKEN, to=public_key(secret), req_id=REQ)
    assert open_sealed(sealed, secret=secret, req_id=REQ) == TOKEN
    assert TOKEN not in sealed and TOKEN.rsplit(".", 1)[1] not in sealed
    with pytest.raises(SealBroken):
        open_sealed(sealed, secret=poll_secret.new_secret(), req_id=REQ)
    with pytest.raises(SealBroken):  # moved to another request
        open_sealed(sealed, secret=secret, req_id="dreq_BBBBBBBBBBBBBBBB")


def test_an_altered_seal_does_not_open() -> None:
    secret = poll_secret.new_secret()
    raw = bytearray(base64.urlsafe_b64decode(seal(TOKEN, to=public_key(secret), req_id=REQ) + "="))
    for index in (0, 40, len(raw) - 1):  # the ephemeral key, the nonce, the tag
        altered = bytearray(raw)
        altered[index] ^= 1
        text = base64.urlsafe_b64encode(bytes(altered)).rstrip(b"=").decode()
        with pytest.raises(SealBroken):
            open_sealed(text, secret=secret, req_id=REQ)
    with pytest.raises(SealBroken):
        open_sealed("not base64!", secret=secret, req_id=REQ)


def test_each_seal_is_fresh_and_what_is_stored_reveals_no_secret() -> None:
    secret = poll_secret.new_secret()
    key = public_key(secret)
    assert seal(TOKEN, to=key, req_id=REQ) != seal(TOKEN, to=key, req_id=REQ)
    assert key == public_key(secret)  # derived, so nothing but the secret is needed to open
    assert secret not in key and secret not in poll_secret.verifier(secret)
    assert poll_secret.matches(poll_secret.verifier(secret), secret)
    assert not poll_secret.matches(poll_secret.verifier(secret), secret + "x")


@pytest.mark.parametrize(
    ("value", "valid"),
    [
        ("dreq_AAAAAAAAAAAAAAAA", True),
        ("dreq_AAAAAAAAAAAAAAA+", False),
        ("dreq_Ab-_0123456789xy", True),
        ("code:BCDF-GHJK", False),
        ("dreq_AAAAAAAAAAAAAAA", False),
        ("dreq_AAAAAAAAAAAAAAAA:x", False),
        ("", False),
    ],
)
def test_request_ids_have_one_shape(value: str, valid: bool) -> None:
    assert is_request_id(value) is valid


@pytest.mark.parametrize(
    ("address", "source"),
    [
        ("192.0.2.7", "192.0.2.7"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::9", "2001:db8:1:2::/64"),  # one subscriber, one source
        ("::ffff:192.0.2.7", "192.0.2.7"),
        ("unknown", "unknown"),
    ],
)
def test_a_source_is_an_ipv4_address_or_an_ipv6_64(address: str, source: str) -> None:
    assert source_of(address) == source
