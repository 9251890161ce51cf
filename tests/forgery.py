"""Forged and garbage requests against every gateway callback and both messenger webhooks.

A `Target` is one legitimate, correctly signed request and what its credential covers. `forge` mutates it
with at least one *breaking* mutation — one that an attacker without the secret makes and that must be
refused — plus optional cosmetic ones (content type, junk headers, header-name case):

    flip a credential byte · drop the credential · non-ASCII or control characters in it
    alter the amount / order id / status (only where the credential covers the body)
    alter a header the signature covers (DOKU's Request-Id, timestamp, Client-Id)
    truncate the body (inside the signed part) · oversize it past server.max_body_bytes

Xendit's callback token and Telegram's secret token authenticate the sender, not the body: for them,
body edits under the real token are the platform's own words, so only the token mutations (and
truncation/oversize) count as forgeries.

Requests go out over a raw socket so that bytes no HTTP client would send (control characters in header
values) reach the server. `choose(lo, hi)` is where randomness comes from: hypothesis in tests
(tests/test_forgery.py), a seeded random.Random in bench/forgery.py.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass, field

Choose = Callable[[int, int], int]
Headers = list[tuple[str, bytes]]


@dataclass(frozen=True)
class Target:
    name: str
    path: str
    body: bytes
    headers: dict[str, str]
    credential_header: str | None = None  # the header carrying the signature/token
    credential_field: bytes | None = None  # or the body field carrying it (Midtrans, Duitku)
    binds_body: bool = True  # the credential covers the body
    fields: dict[str, bytes] = field(default_factory=dict)  # role -> regex with one group: the value
    bound_headers: tuple[str, ...] = ()  # other headers the signature covers
    signed_prefix: int | None = None  # truncation must cut before this offset to touch signed bytes


@dataclass(frozen=True)
class Request:
    path: str
    headers: Headers
    body: bytes
    mutations: tuple[str, ...]


_ALPHABET = b"0123456789abcdefABCDEF+/=-_xyz"
_CONTENT_TYPES = [b"text/plain", b"application/xml", b"multipart/form-data; boundary=zz",
                  b"application/json; charset=latin-1", b"application/x-www-form-urlencoded", b"\xff\xfe/\xe9"]


def _different_byte(old: int, choose: Choose) -> bytes:
    candidates = [c for c in _ALPHABET if c != old]
    return bytes([candidates[choose(0, len(candidates) - 1)]])


def _credential_span(target: Target, body: bytes) -> tuple[int, int] | None:
    """Start and end of the credential value inside the body (Midtrans, Duitku)."""
    if target.credential_field is None:
        return None
    match = re.search(target.credential_field, body)
    return match.span(1) if match else None


def _edit_credential(target: Target, body: bytes, headers: dict[str, bytes], choose: Choose,
                     edit: Callable[[bytes], bytes]) -> bytes:
    if target.credential_header is not None:
        headers[target.credential_header] = edit(headers.get(target.credential_header, b""))
        return body
    span = _credential_span(target, body)
    if span is None:
        return body
    start, end = span
    return body[:start] + edit(body[start:end]) + body[end:]


def flip_credential(target: Target, body: bytes, headers: dict[str, bytes], choose: Choose) -> bytes:
    def edit(value: bytes) -> bytes:
        if not value:
            return b"x"
        at = choose(0, len(value) - 1)
        return value[:at] + _different_byte(value[at], choose) + value[at + 1:]
    return _edit_credential(target, body, headers, choose, edit)


def drop_credential(target: Target, body: bytes, headers: dict[str, bytes], choose: Choose) -> bytes:
    if target.credential_header is not None:
        headers.pop(target.credential_header, None)
        return body
    return _edit_credential(target, body, headers, choose, lambda value: b"")


def odd_credential(target: Target, body: bytes, headers: dict[str, bytes], choose: Choose) -> bytes:
    """Non-ASCII or control characters inside the credential."""
    if target.credential_header is not None:
        junk = [b"\xe9", b"\xff", b"\x01", b"\x7f", b"\x1b[0m", b"\xc3\xa9", b"\x00"][choose(0, 6)]
    else:  # inside JSON/form text: characters that survive parsing
        junk = [b"\\u00e9", b"\\u0001", b"%00", b"%C3%A9", b"\\u007f"][choose(0, 4)]

    def edit(value: bytes) -> bytes:
        at = choose(0, len(value))
        return value[:at] + junk + value[at:]
    return _edit_credential(target, body, headers, choose, edit)


def alter_field(target: Target, body: bytes, headers: dict[str, bytes], choose: Choose) -> bytes:
    """A different amount, order id or status under the original signature."""
    roles = sorted(target.fields)
    pattern = target.fields[roles[choose(0, len(roles) - 1)]]
    match = re.search(pattern, body)
    if match is None:
        return body
    start, end = match.span(1)
    value = body[start:end]
    if value.isdigit() or re.fullmatch(rb"\d+\.\d\d", value):
        whole, _, cents = value.partition(b".")
        changed = str(int(whole) + choose(1, 10_000_000)).encode() + (b"." + cents if cents else b"")
    else:
        at = choose(0, max(0, len(value) - 1))
        changed = (value[:at] + _different_byte(value[at] if value else 0, choose) + value[at + 1:]) if value \
            else b"X"
    return body[:start] + changed + body[end:]


def alter_bound_header(target: Target, body: bytes, headers: dict[str, bytes], choose: Choose) -> bytes:
    name = target.bound_headers[choose(0, len(target.bound_headers) - 1)]
    value = headers.get(name, b"")
    at = choose(0, max(0, len(value) - 1))
    headers[name] = (value[:at] + _different_byte(value[at], choose) + value[at + 1:]) if value else b"1"
    return body


def truncate(target: Target, body: bytes, headers: dict[str, bytes], choose: Choose) -> bytes:
    limit = target.signed_prefix if target.signed_prefix is not None else len(body)
    return body[:choose(0, max(0, limit - 1))]


def oversize(max_body_bytes: int) -> Callable:
    def grow(target: Target, body: bytes, headers: dict[str, bytes], choose: Choose) -> bytes:
        return body + b" " * (max_body_bytes + choose(1, 4096) - len(body))
    grow.__name__ = "oversize"
    return grow


def content_type(target: Target, body: bytes, headers: dict[str, bytes], choose: Choose) -> bytes:
    for key in [k for k in headers if k.lower() == "content-type"]:
        del headers[key]
    pick = choose(0, len(_CONTENT_TYPES))
    if pick < len(_CONTENT_TYPES):
        headers["Content-Type"] = _CONTENT_TYPES[pick]
    return body


def junk_header(target: Target, body: bytes, headers: dict[str, bytes], choose: Choose) -> bytes:
    headers[f"X-Junk-{choose(0, 99)}"] = [b"\xe9t\xe9", b"a\x01b", b"", b"x" * 2000, b"\xf0\x9f\x92\xb8"][choose(0, 4)]
    return body


def header_case(target: Target, body: bytes, headers: dict[str, bytes], choose: Choose) -> bytes:
    for key in list(headers):
        if choose(0, 1):
            headers[key.lower() if choose(0, 1) else key.upper()] = headers.pop(key)
    return body


def breaking_mutations(target: Target, max_body_bytes: int) -> list[Callable]:
    found = [flip_credential, drop_credential, odd_credential, truncate, oversize(max_body_bytes)]
    if target.binds_body and target.fields:
        found.append(alter_field)
    if target.bound_headers:
        found.append(alter_bound_header)
    return found


COSMETIC = [content_type, junk_header, header_case]


def forge(target: Target, choose: Choose, max_body_bytes: int) -> Request:
    """One forged request: 1–2 breaking mutations, 0–2 cosmetic ones, in a chosen order."""
    breaking = breaking_mutations(target, max_body_bytes)
    plan = [breaking[choose(0, len(breaking) - 1)] for _ in range(choose(1, 2))]
    plan += [COSMETIC[choose(0, len(COSMETIC) - 1)] for _ in range(choose(0, 2))]
    if choose(0, 1):
        plan.reverse()
    body = target.body
    headers = {k: v.encode() for k, v in target.headers.items()}
    for mutation in plan:
        body = mutation(target, body, headers, choose)
    if not any(m.__name__ in ("truncate", "oversize") for m in plan) and body == target.body and \
            headers == {k: v.encode() for k, v in target.headers.items()}:
        body = flip_credential(target, body, headers, choose)  # a mutation that happened to change nothing
    return Request(target.path, list(headers.items()), body, tuple(m.__name__ for m in plan))


async def send(host: str, port: int, request: Request, timeout: float = 10.0) -> int:
    """POST over a raw socket; the status code (0 if the server closed without answering)."""
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        head = [f"POST {request.path} HTTP/1.1".encode(), f"Host: {host}:{port}".encode(),
                b"Connection: close", f"Content-Length: {len(request.body)}".encode()]
        head += [name.encode("latin-1") + b": " + value for name, value in request.headers]
        try:
            writer.write(b"\r\n".join(head) + b"\r\n\r\n" + request.body)
            await writer.drain()
        except ConnectionError:  # refused before the whole body was sent (too large): read the answer
            pass
        line = await asyncio.wait_for(reader.readline(), timeout)
        parts = line.split()
        return int(parts[1]) if len(parts) >= 2 and parts[1].isdigit() else 0
    except ConnectionError:
        return 0
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except ConnectionError:
            pass
