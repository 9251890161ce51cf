"""Comparing secrets and signatures: in constant time, on bytes, where anything that is not ASCII (a hostile
header) is simply not equal. The one place every webhook and callback check goes through."""

from __future__ import annotations

import hmac


def same_secret(expected: str, given: str | None) -> bool:
    if not given:
        return False
    try:
        given_bytes = given.encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(expected.encode("ascii"), given_bytes)
