"""CTAP2 framing shared by the software authenticator's commands.

A real key answers malformed input with a CTAP status byte, never a crash, so every
parameter read goes through `require`/`optional`, which turn a missing or mistyped
value into the status code the specification names.
"""

from __future__ import annotations

import struct
from typing import Any, TypeVar

from cryptography.hazmat.primitives.asymmetric import ec
from fido2 import cbor
from fido2.ctap import CtapError

T = TypeVar("T")

ERR = CtapError.ERR

# What fido2's cbor.decode raises on malformed input; none of it may escape as a crash.
_DECODE_ERRORS = (ValueError, TypeError, IndexError, KeyError, struct.error)


def decode_request(data: bytes) -> tuple[int, dict[Any, Any]]:
    """Split a CTAPHID_CBOR payload into its command byte and parameter map.

    Raises:
        CtapError: INVALID_LENGTH, INVALID_CBOR or CBOR_UNEXPECTED_TYPE.
    """
    if not data:
        raise CtapError(ERR.INVALID_LENGTH)
    if len(data) == 1:
        return data[0], {}
    try:
        params = cbor.decode(data[1:])
    except _DECODE_ERRORS as exc:
        raise CtapError(ERR.INVALID_CBOR) from exc
    if not isinstance(params, dict):
        raise CtapError(ERR.CBOR_UNEXPECTED_TYPE)
    return data[0], params


def encode_response(response: dict[Any, Any] | None) -> bytes:
    """A success status byte followed by the canonical CBOR response, if any."""
    return b"\x00" + (cbor.encode(response) if response else b"")


def require(params: dict[Any, Any], key: Any, kind: type[T]) -> T:
    """The value under `key`, which must be present and of type `kind`.

    Raises:
        CtapError: MISSING_PARAMETER or CBOR_UNEXPECTED_TYPE.
    """
    value = optional(params, key, kind)
    if value is None:
        raise CtapError(ERR.MISSING_PARAMETER)
    return value


def optional(params: dict[Any, Any], key: Any, kind: type[T]) -> T | None:
    """The value under `key` if present; it must then be of type `kind`.

    Raises:
        CtapError: CBOR_UNEXPECTED_TYPE.
    """
    value = params.get(key)
    if value is None:
        return None
    # bool is an int in Python but a distinct CBOR type; a flag is never a number.
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise CtapError(ERR.CBOR_UNEXPECTED_TYPE)
    return value


def p256_cose_key(public_key: ec.EllipticCurvePublicKey, alg: int) -> dict[int, Any]:
    """`public_key` as a COSE_Key map: kty EC2, curve P-256, the given `alg`."""
    numbers = public_key.public_numbers()
    return {1: 2, 3: alg, -1: 1, -2: numbers.x.to_bytes(32), -3: numbers.y.to_bytes(32)}
