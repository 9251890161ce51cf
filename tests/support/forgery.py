"""Forged and garbage requests against every gateway callback, the payout provider's callback, both messenger
webhooks and the deposit API (a signed create, and the Worker-compatible create).

A `Target` is one legitimate, correctly signed request and what its credential covers. `forge` mutates it
with at least one *breaking* mutation — one that an attacker without the secret makes and that must be
refused — plus optional cosmetic ones (content type, junk headers, header-name case):

    flip a credential byte · drop the credential · non-ASCII or control characters in it
    alter the amount / order id / status (only where the credential covers the body)
    alter a header the signature covers (DOKU's Request-Id, timestamp, Client-Id)
    truncate the body (inside the signed part) · oversize it past server.max_body_bytes

Xendit's callback token, Telegram's secret token and a Worker client's Bearer key authenticate the sender, not
the body: for them, body edits under the real token are the sender's own words, so only the token mutations
(and truncation/oversize) count as forgeries. The signed API create binds its body, its key, its timestamp and
its nonce (the nonce is only spent by a request whose signature holds, so forgeries never spend it).

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
    # Leading bytes of a header that edits leave alone: "Bearer " (HTTP compares the scheme without case, so
    # "bearer" is the same credential, not a forgery).
    keep: dict[str, int] = field(default_factory=dict)


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


def _key(headers: dict[str, bytes], name: str) -> str:
    """The header's key as currently spelled (header_case may have changed it); `name` if absent."""
    return next((k for k in headers if k.lower() == name.lower()), name)


def _credential_span(target: Target, body: bytes) -> tuple[int, int] | None:
    """Start and end of the credential value inside the body (Midtrans, Duitku)."""
    if target.credential_field is None:
        return None
    match = re.search(target.credential_field, body)
    return match.span(1) if match else None


def _edit_credential(target: Target, body: bytes, headers: dict[str, bytes], choose: Choose,
                     edit: Callable[[bytes], bytes]) -> bytes:
    if target.credential_header is not None:
        key = _key(headers, target.credential_header)
        value = headers.get(key, b"")
        kept = target.keep.get(target.credential_header, 0)
        headers[key] = value[:kept] + edit(value[kept:])
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
        headers.pop(_key(headers, target.credential_header), None)
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
    bound = target.bound_headers[choose(0, len(target.bound_headers) - 1)]
    name = _key(headers, bound)
    value = headers.get(name, b"")
    kept = min(target.keep.get(bound, 0), max(0, len(value) - 1))
    at = choose(kept, max(kept, len(value) - 1))
    headers[name] = (value[:at] + _different_byte(value[at], choose) + value[at + 1:]) if value else b"1"
    return body


def truncate(target: Target, body: bytes, headers: dict[str, bytes], choose: Choose) -> bytes:
    # A strict prefix of the signed part: never the whole original (with only padding cut off).
    limit = min(len(body), target.signed_prefix if target.signed_prefix is not None else len(target.body))
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
    # Distinct breaking mutations: the same one twice can undo itself (a byte flipped and flipped back).
    plan = list(dict.fromkeys(breaking[choose(0, len(breaking) - 1)] for _ in range(choose(1, 2))))
    plan += [COSMETIC[choose(0, len(COSMETIC) - 1)] for _ in range(choose(0, 2))]
    if choose(0, 1):
        plan.reverse()
    body = target.body
    headers = {k: v.encode() for k, v in target.headers.items()}
    broke = False
    for mutation in plan:
        before = (body, dict(headers))
        body = mutation(target, body, headers, choose)
        if mutation not in COSMETIC and (body, headers) != before:
            broke = True
    if not broke:
        body = flip_credential(target, body, headers, choose)  # the breaking ones happened to change nothing
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


VICTIM = "9000"  # the user whose pending payments the forgeries try to credit
API_SECRET = "forgery-api-secret-0123456789abcdef"
PAYEE = "forgery.tina"  # the jastiper whose withdrawal the forgeries try to complete or fail


class ForgeryWorld:
    """The whole server in-process with every gateway and both messengers enabled (fakes on loopback), one
    pending payment per gateway created through its create API, and a legitimate request per target."""

    GATEWAYS = ("midtrans", "duitku", "doku", "xendit", "sandbox")

    def __init__(self, tmp_path, database_url: str) -> None:
        self._tmp = tmp_path
        self._url = database_url

    async def __aenter__(self) -> ForgeryWorld:
        from tests.support.gateways import FakeDoku, FakeDuitku, FakeXendit
        from tests.support.harness import AppUnderTest
        from tests.support.midtrans import FakeMidtrans
        from tests.support.payouts import FakeIris
        from tests.support.telegram import FakeBotAPI
        from tests.support.whatsapp import FakeGraphAPI

        self.fakes = {"midtrans": FakeMidtrans(), "duitku": FakeDuitku(), "doku": FakeDoku(), "xendit": FakeXendit()}
        self.bot, self.graph = FakeBotAPI(), FakeGraphAPI()
        self.iris = FakeIris()  # the payout provider whose signature binds the body (SHA-512 over it)
        for fake in (*self.fakes.values(), self.bot, self.graph, self.iris):
            await fake.start()
        config = {
            "payments": {"gateways": list(self.GATEWAYS), **{n: f.config() for n, f in self.fakes.items()}},
            "telegram": {"token": self.bot.token, "mode": "webhook", "webhook_secret": "tg-forgery-secret",
                         "api_base_url": self.bot.base_url},
            "whatsapp": self.graph.config(),
            "payouts": {"provider": "midtrans", "midtrans": self.iris.config(), "new_account_hold_hours": 0},
            # A high rate: a truncated body under a valid key is counted, and must not make the last request 429.
            "api": {"enabled": True, "secret_key": API_SECRET, "rate_per_minute": 10_000_000},
        }
        self.app = AppUnderTest(self._tmp, self._url, config)
        await self.app.start()
        self.max_body_bytes = self.app.settings.server.max_body_bytes
        self.orders = {name: await self._payment(name) for name in self.GATEWAYS}
        self.payout_id, self.payout_ref = await self._payout()
        clients = self.app.runtime.api.clients
        self.signer = await clients.add("forgery-api", "http://127.0.0.1:9/hook", require_signature=True)
        self.worker = await clients.add("forgery-worker", "http://127.0.0.1:9/cb", worker=True)
        self.baseline = await self._state()
        self.targets = {t.name: t for t in self._targets()}
        return self

    async def _payout(self) -> tuple[int, str]:
        """A verified jastiper's withdrawal, sent to the fake Iris and waiting for its notification. The payee
        chats in the playground, so nothing it is told reaches the Telegram or WhatsApp fakes."""
        from sqlalchemy import update

        from services.kinds import AccountKind
        from storage.models import User

        rt = self.app.runtime
        payee = (await rt.services.inbound.register(channel="playground", external_id=PAYEE, display_name="Tina",
                                                  update_key=None)).user.id
        async with rt.db.write() as session:
            await session.execute(update(User).where(User.id == payee).values(verified_at=rt.clock.now()))
        await rt.services.wallet.adjust(payee, 200_000, reference="forgery:earned", to=AccountKind.EARNINGS)
        withdrawals = rt.services.withdrawals
        draft = await withdrawals.draft_account(payee, "bca", "0011223344", "Siti Aminah")
        await withdrawals.confirm_account(payee, draft.id)
        quote = await withdrawals.quote(payee, 100_000)
        payout = await withdrawals.request(payee, quote.amount, quote.key)
        await withdrawals.advance(payout.id)
        return payout.id, next(iter(self.iris.made))

    async def _state(self) -> dict[str, object]:
        from sqlalchemy import func, select

        from storage.models import Deposit, Payout, Transfer

        async with self.app.runtime.db.read() as session:
            return {"transfers": await session.scalar(select(func.count()).select_from(Transfer)),
                    "payouts": sorted((await session.execute(select(Payout.id, Payout.status))).all()),
                    "deposits": await session.scalar(select(func.count()).select_from(Deposit))}

    async def __aexit__(self, *exc: object) -> None:
        await self.app.stop()
        for fake in (*self.fakes.values(), self.bot, self.graph, self.iris):
            await fake.stop()

    async def _payment(self, gateway_name: str) -> str:
        from services.topups import Topups

        rt = self.app.runtime
        user = (await rt.services.inbound.register(channel="telegram", external_id=VICTIM, display_name="Korban",
                                                 update_key=None)).user.id
        gateway = next(g for g in rt.gateways if g.name == gateway_name)
        only = Topups(rt.db, [gateway], rt.settlement, rt.clock, rules=rt.services.topups.rules,
                      public_url=self.app.url, expiry_minutes=60, max_pending=len(self.GATEWAYS))
        # A different amount per gateway: the same amount again would (rightly) return the first payment.
        amount = self.amount(gateway_name)
        return (await only.start(user_id=user, customer_name="Korban", amount=amount)).order_id

    def amount(self, gateway_name: str) -> int:
        return 50_000 + 1_000 * self.GATEWAYS.index(gateway_name)

    def _targets(self) -> list[Target]:
        import json as _json

        from services.payments.sandbox import SIGNATURE_HEADER
        from tests.support.telegram import telegram_text_update
        from tests.support.whatsapp import signed, text_update

        made = []
        body, headers = self.fakes["midtrans"].callback(self.orders["midtrans"])
        made.append(Target("midtrans", "/payments/midtrans/notify", body, headers,
                           credential_field=rb'"signature_key": "([^"]*)"',
                           fields={"amount": rb'"gross_amount": "([^"]*)"', "order": rb'"order_id": "([^"]*)"',
                                   "status_code": rb'"status_code": "([^"]*)"'}))
        body, headers = self.fakes["duitku"].callback(self.orders["duitku"])
        made.append(Target("duitku", "/payments/duitku/notify", body, headers,
                           credential_field=rb"signature=([0-9a-fA-F]*)",
                           fields={"amount": rb"amount=(\d+)", "order": rb"merchantOrderId=([^&]*)",
                                   "status": rb"resultCode=(\d+)"},
                           signed_prefix=re.search(rb"signature=[0-9a-fA-F]*", body).end()))
        body, headers = self.fakes["doku"].callback(self.orders["doku"])
        made.append(Target("doku", "/payments/doku/notify", body, headers, credential_header="Signature",
                           fields={"amount": rb'"amount": (\d+)', "order": rb'"invoice_number": "([^"]*)"',
                                   "status": rb'"status": "([A-Z]*)"'},
                           bound_headers=("Client-Id", "Request-Id", "Request-Timestamp")))
        body, headers = self.fakes["xendit"].callback(self.orders["xendit"])
        made.append(Target("xendit", "/payments/xendit/notify", body, headers,
                           credential_header="x-callback-token", binds_body=False))
        sandbox = next(g for g in self.app.runtime.gateways if g.name == "sandbox")
        body, headers = sandbox.signed_callback(self.orders["sandbox"], self.amount("sandbox"), "paid")
        made.append(Target("sandbox", "/payments/sandbox/notify", body, headers, credential_header=SIGNATURE_HEADER,
                           fields={"amount": rb'"amount":(\d+)', "order": rb'"order_id":"([^"]*)"',
                                   "status": rb'"status":"([a-z]*)"'}))
        body, headers = self.iris.finish(self.payout_ref, "completed")
        made.append(Target("payout-midtrans", "/payouts/midtrans/notify", body, headers,
                           credential_header="Iris-Signature",
                           fields={"amount": rb'"amount": "([^"]*)"', "order": rb'"reference_no": "([^"]*)"',
                                   "status": rb'"status": "([a-z]*)"'}))
        update = _json.dumps(telegram_text_update(777, 4242, "SALDO")).encode()
        made.append(Target("telegram", "/telegram/webhook", update,
                           {"Content-Type": "application/json",
                            "X-Telegram-Bot-Api-Secret-Token": "tg-forgery-secret"},
                           credential_header="X-Telegram-Bot-Api-Secret-Token", binds_body=False))
        raw, headers = signed(text_update("6281234500000", "SALDO", "wamid.forgery1"))
        made.append(Target("whatsapp", "/whatsapp/webhook", raw, headers, credential_header="X-Hub-Signature-256",
                           fields={"text": rb'"body": "([^"]*)"', "from": rb'"from": "([^"]*)"'}))
        made += [self._api_target(), self._worker_target()]
        return made

    def _api_target(self) -> Target:
        """A signed create for a client that must sign: fresh timestamp and nonce each time it is built."""
        import json as _json
        import secrets
        import time

        from services.clients import request_signature

        body = _json.dumps({"deposit_id": "forged-1", "user_ref": "victim", "amount": 60_000}).encode()
        timestamp, nonce = str(int(time.time())), secrets.token_hex(12)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.signer.api_key}",
                   "X-Timestamp": timestamp, "X-Nonce": nonce,
                   "X-Signature": request_signature(self.signer.signing_secret, timestamp, nonce, body)}
        return Target("api-deposit", "/api/v1/deposits", body, headers, credential_header="X-Signature",
                      fields={"amount": rb'"amount": (\d+)', "user": rb'"user_ref": "([^"]*)"',
                              "deposit": rb'"deposit_id": "([^"]*)"'},
                      bound_headers=("Authorization", "X-Timestamp", "X-Nonce"), keep={"Authorization": 7})

    def _worker_target(self) -> Target:
        import json as _json

        body = _json.dumps({"userId": "victim", "amount": 60_000, "productDetails": "forged"}).encode()
        return Target("worker-deposit", "/deposit/create", body,
                      {"Content-Type": "application/json", "Authorization": f"Bearer {self.worker.api_key}"},
                      credential_header="Authorization", binds_body=False, keep={"Authorization": 7})

    async def send(self, request: Request) -> int:
        return await send("127.0.0.1", self.app.port, request)

    async def nothing_happened(self) -> list[str]:
        """What forged requests changed (empty when nothing): credits, payment states, users, replies."""
        from sqlalchemy import func, select

        from storage.models import GatewayEvent, Payment, User

        problems = []
        if (now := await self._state()) != self.baseline:
            problems.append(f"ledger or payouts changed: {self.baseline} -> {now}")
        async with self.app.runtime.db.read() as session:
            if events := await session.scalar(select(func.count()).select_from(GatewayEvent)):
                problems.append(f"{events} gateway events stored")
            statuses = set((await session.scalars(select(Payment.status))).all())
            if statuses != {"pending"}:
                problems.append(f"payment statuses {statuses}")
            users = set((await session.scalars(select(User.external_id))).all())
            if strangers := users - {VICTIM, PAYEE}:
                problems.append(f"users created: {sorted(strangers)[:5]}")
        await asyncio.sleep(0.2)  # a webhook update is processed after its 200: give one the time to show
        if sent := [c for c in self.bot.calls if c.method == "sendMessage"]:
            problems.append(f"{len(sent)} Telegram replies")
        if self.graph.messages:
            problems.append(f"{len(self.graph.messages)} WhatsApp replies")
        return problems

    def legitimate(self, name: str) -> Request:
        target = self._api_target() if name == "api-deposit" else self.targets[name]  # (a nonce is good once)
        return Request(target.path, [(k, v.encode()) for k, v in target.headers.items()], target.body, ())
