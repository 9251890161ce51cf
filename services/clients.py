"""Client bots: the operator's commands (`python -m bot clients add|list|rotate|disable|resend|settle`) and how
a request from one is authenticated.

Credentials, per generation (`client_keys`; rotation adds one and lets the previous one live for
api.rotation_grace_hours):
- the API key `tk_<key id>_<secret>`: looked up by its key id, kept as a SHA-256 hash — except for a Worker
  client, whose key is also the Worker's shared secret (the Bearer and HMAC key of what we forward to it), so it
  is kept sealed (services/sealing.py);
- the signing secret (request signing) and the webhook secret (`whsec_…`, Standard Webhooks), sealed.

A request is authenticated by `Authorization: Bearer <key>`; when signed (required with --require-signature),
by `X-Timestamp` (unix seconds, ±300 s), `X-Nonce` (once per client for 10 minutes, remembered in the database
so that every process refuses a replay) and `X-Signature` = hex HMAC-SHA256(signing secret,
`timestamp.nonce.raw body`). Any failure is Unauthorized (401), whatever the reason, so a prober learns nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import secrets
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import ledger
from services.clock import Clock
from services.errors import NotFound, OperatorError, Unauthorized
from services.forwarding import EVENT_TYPES, webhook_id
from services.kinds import AccountKind, Channel
from services.outbox import send_again
from services.sealing import Sealer
from storage.db import Database
from storage.models import Account, ApiNonce, Client, ClientKey, Deposit, OutboxMessage, Payment
from storage.queries import insert_ignore, rows_changed

log = logging.getLogger(__name__)

NAME = re.compile(r"[a-z0-9][a-z0-9_-]{1,39}")
_KEY = re.compile(r"tk_([0-9a-f]{12})_[A-Za-z0-9_-]{20,64}")
_NONCE = re.compile(r"[A-Za-z0-9_-]{8,64}")
_HEX = re.compile(r"[0-9a-f]{64}")  # exactly as hexdigest() writes it
SETTLED_BY = ledger.provider("manual")  # the operator's own transfer to a client bot, outside any API


@dataclass(frozen=True)
class ClientView:
    id: int
    name: str
    callback_url: str
    worker: bool
    require_signature: bool
    origins: tuple[str, ...]
    min_amount: int | None
    max_amount: int | None
    gateways: tuple[str, ...] | None
    disabled: bool


@dataclass(frozen=True)
class _Key:
    row_id: int
    client: ClientView
    key_hash: str | None
    key_sealed: str | None
    expires_at: datetime | None
    last_used_at: datetime | None
    signing: tuple[tuple[str, datetime | None], ...]  # every generation's sealed signing secret and its expiry


@dataclass(frozen=True)
class Credentials:
    """Shown once, when a client is added or rotated; never stored in the clear (but a Worker client's key)."""

    client: str
    api_key: str
    signing_secret: str
    webhook_secret: str

    def as_json(self) -> dict[str, str]:
        return {"client": self.client, "api_key": self.api_key, "signing_secret": self.signing_secret,
                "webhook_secret": self.webhook_secret}


@dataclass(frozen=True)
class ForwardTarget:
    """Where and how a client's events are sent: every valid webhook secret (both during a rotation) and, for a
    Worker client, the key it uses now (the one it last authenticated with)."""

    callback_url: str
    webhook_secrets: tuple[str, ...]
    worker_key: str | None


@dataclass(frozen=True)
class ClientSummary:
    name: str
    worker: bool
    disabled: bool
    callback_url: str
    owed: int  # deposits paid, not yet paid over to the client (its account)
    receivable: int  # reversed deposits its account could not cover
    deposits: int
    paid: int
    forwards_waiting: int
    forwards_failed: int


def _view(c: Client) -> ClientView:
    return ClientView(c.id, c.name, c.callback_url, c.worker, c.require_signature, tuple(c.origins or ()),
                      c.min_amount, c.max_amount, tuple(c.gateways) if c.gateways is not None else None,
                      c.disabled_at is not None)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def request_signature(signing_secret: str, timestamp: str, nonce: str, raw_body: bytes) -> str:
    """What a client sends as X-Signature (the README's example computes the same)."""
    return hmac.new(signing_secret.encode(), f"{timestamp}.{nonce}.".encode() + raw_body, hashlib.sha256).hexdigest()


class Clients:
    def __init__(self, db: Database, clock: Clock, sealer: Sealer | None, *, rotation_grace_hours: float = 24.0,
                 skew_s: float = 300.0, nonce_window_s: float = 600.0, cache_s: float = 1.0) -> None:
        self._db = db
        self._clock = clock
        self._sealer = sealer
        self._grace = timedelta(hours=rotation_grace_hours)
        self._skew = skew_s
        self._nonce_window = timedelta(seconds=nonce_window_s)
        self._cache_s = cache_s
        self._keys: dict[str, tuple[float, _Key]] = {}  # key id -> (read at, monotonic; the key)
        self._used: dict[int, datetime] = {}  # key row -> when this process last recorded its use

    def _seal(self) -> Sealer:
        if self._sealer is None:
            raise OperatorError("set api.secret_key (BOT_API__SECRET_KEY): it seals client secrets at rest")
        return self._sealer

    # --- the operator's commands --------------------------------------------------------------------

    async def add(self, name: str, callback_url: str, *, worker: bool = False, require_signature: bool = False,
                  origins: Sequence[str] = (), min_amount: int | None = None, max_amount: int | None = None,
                  gateways: Sequence[str] | None = None) -> Credentials:
        """A new client bot and its first credentials (shown once)."""
        sealer = self._seal()
        if not NAME.fullmatch(name):
            raise OperatorError("a client name is 2-40 of a-z 0-9 _ - (starting with a letter or digit)")
        now = self._clock.now()
        async with self._db.write() as session:
            if await session.scalar(select(Client.id).where(Client.name == name)) is not None:
                raise OperatorError(f"a client named {name} exists already (`clients rotate {name}` gives it new "
                                    "credentials)")
            client = Client(name=name, callback_url=callback_url, worker=worker, require_signature=require_signature,
                            origins=list(origins), min_amount=min_amount, max_amount=max_amount,
                            gateways=list(gateways) if gateways else None, created_at=now)
            session.add(client)
            await session.flush()
            credentials = await self._new_key(session, sealer, client, now)
            await ledger.accounts(session, [ledger.client(client.id), ledger.client_receivable(client.id)], now)
        log.info("client %s added (worker=%s, callback %s)", name, worker, callback_url)
        return credentials

    async def _new_key(self, session: AsyncSession, sealer: Sealer, client: Client, now: datetime) -> Credentials:
        key_id = secrets.token_hex(6)
        api_key = f"tk_{key_id}_{secrets.token_urlsafe(32)}"
        signing = "tss_" + secrets.token_urlsafe(32)
        webhook = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
        session.add(ClientKey(client_id=client.id, key_id=key_id,
                              key_hash=None if client.worker else _hash(api_key),
                              key_sealed=sealer.seal(api_key) if client.worker else None,
                              signing_secret_sealed=sealer.seal(signing), webhook_secret_sealed=sealer.seal(webhook),
                              created_at=now))
        return Credentials(client.name, api_key, signing, webhook)

    async def _client(self, session: AsyncSession, name: str) -> Client:
        client = await session.scalar(select(Client).where(Client.name == name))
        if client is None:
            raise NotFound(f"no client named {name!r}")
        return client

    async def rotate(self, name: str) -> Credentials:
        """New credentials; the current ones stay valid for api.rotation_grace_hours (both signatures are sent)."""
        sealer = self._seal()
        now = self._clock.now()
        async with self._db.write() as session:
            client = await self._client(session, name)
            until = now + self._grace
            await session.execute(update(ClientKey).where(
                ClientKey.client_id == client.id, or_(ClientKey.expires_at.is_(None), ClientKey.expires_at > until))
                .values(expires_at=until))
            credentials = await self._new_key(session, sealer, client, now)
        self._keys.clear()
        log.info("client %s: credentials rotated; the previous ones expire at %s", name, now + self._grace)
        return credentials

    async def disable(self, name: str) -> bool:
        """Creating deposits is refused from now on (401); reading them still works, pending ones still settle and
        are forwarded. False when it was disabled already."""
        async with self._db.write() as session:
            client = await self._client(session, name)
            changed = rows_changed(await session.execute(update(Client).where(
                Client.id == client.id, Client.disabled_at.is_(None)).values(disabled_at=self._clock.now())))
        self._keys.clear()
        return changed == 1

    async def summaries(self) -> list[ClientSummary]:
        async with self._db.read() as session:
            clients = (await session.scalars(select(Client).order_by(Client.name))).all()
            balances = {(kind, key): balance for kind, key, balance in (await session.execute(
                select(Account.kind, Account.key, Account.balance).where(
                    Account.kind.in_((AccountKind.CLIENT.value, AccountKind.RECEIVABLE.value))))).all()}
            deposits = dict((await session.execute(select(Deposit.client_id, func.count()).group_by(
                Deposit.client_id))).all())
            paid = dict((await session.execute(
                select(Deposit.client_id, func.count(func.distinct(Deposit.id))).join(
                    Payment, Payment.deposit_id == Deposit.id).where(Payment.credited_at.is_not(None))
                .group_by(Deposit.client_id))).all())
            forwards = {(chat, status): n for chat, status, n in (await session.execute(
                select(OutboxMessage.chat_id, OutboxMessage.status, func.count()).where(
                    OutboxMessage.channel == Channel.WEBHOOK.value, OutboxMessage.status != "sent")
                .group_by(OutboxMessage.chat_id, OutboxMessage.status))).all()}
        return [ClientSummary(c.name, c.worker, c.disabled_at is not None, c.callback_url,
                              int(balances.get(("client", str(c.id)), 0)),
                              int(balances.get(("receivable", f"client:{c.id}"), 0)),
                              int(deposits.get(c.id, 0)), int(paid.get(c.id, 0)),
                              int(forwards.get((str(c.id), "pending"), 0)),
                              int(forwards.get((str(c.id), "failed"), 0))) for c in clients]

    async def settle(self, name: str, amount: int, reference: str) -> bool:
        """The operator paid the client bot `amount` outside Titip: its account goes down by that (never below
        zero: InsufficientFunds). The reference makes it once: the same again is a no-op (False), the same reference
        with another amount a LedgerConflict."""
        if amount <= 0 or not reference.strip():
            raise OperatorError("--amount must be positive and --reference not empty")
        now = self._clock.now()
        async with self._db.write() as session:
            client = await self._client(session, name)
            move = ledger.Move(f"client-settle:{client.id}:{reference.strip()[:100]}", ledger.client(client.id),
                               SETTLED_BY, amount, "client-settle")
            posted = await ledger.post(session, [move], now)
        return bool(posted)

    async def resend(self, name: str, deposit_id: str) -> int:
        """Send a deposit's events again (after their retries ran out, or on the client's request), under the same
        webhook ids; how many were queued again."""
        now = self._clock.now()
        async with self._db.write() as session:
            client = await self._client(session, name)
            row = await session.scalar(select(Deposit.id).where(Deposit.client_id == client.id,
                                                                Deposit.deposit_id == deposit_id))
            if row is None:
                raise NotFound(f"client {name} has no deposit {deposit_id!r}")
            # A fresh start: its 3 days of retries count from now.
            return await send_again(session, Channel.WEBHOOK.value,
                                    [webhook_id(row, event) for event in EVENT_TYPES], now)

    # --- requests from client bots ------------------------------------------------------------------

    async def authenticate(self, authorization: str | None, headers: Mapping[str, str], raw_body: bytes, *,
                           creating: bool) -> ClientView:
        """The client a request comes from, or Unauthorized. `creating`: a disabled client is refused."""
        key = (authorization or "")[7:].strip() if (authorization or "")[:7].lower() == "bearer " else ""
        match = _KEY.fullmatch(key)
        if match is None:
            raise Unauthorized("missing or malformed API key")
        now = self._clock.now()
        found = await self._key(match.group(1), now)
        if found is None:
            raise Unauthorized("unknown API key")
        if found.expires_at is not None and found.expires_at <= now:
            raise Unauthorized("expired API key")
        if not self._same_key(found, key):
            raise Unauthorized("wrong API key")
        view = found.client
        if creating and view.disabled:
            raise Unauthorized("client disabled")
        signed = any(h in headers for h in ("X-Timestamp", "X-Nonce", "X-Signature"))
        if view.require_signature and not signed:
            raise Unauthorized("this client must sign its requests")
        nonce = ""
        if signed:
            valid = [sealed for sealed, until in found.signing if until is None or until > now]
            nonce = self._check_signature([self._seal().open(s) for s in valid], headers, raw_body, now)
        used = self._used.get(found.row_id, found.last_used_at)
        stale_use = used is None or used < now - timedelta(minutes=1)
        if signed or stale_use:
            async with self._db.write() as session:
                if signed and (await session.execute(insert_ignore(session, ApiNonce.__table__, {
                        "client_id": view.id, "nonce": nonce, "seen_at": now}, ["client_id", "nonce"]))
                        ).scalar_one_or_none() is None:
                    raise Unauthorized("nonce used before")
                if stale_use:  # which key a Worker client uses now is the one we forward with
                    await session.execute(update(ClientKey).where(ClientKey.id == found.row_id)
                                          .values(last_used_at=now))
            self._used[found.row_id] = now
        return view

    async def _key(self, key_id: str, now: datetime) -> _Key | None:
        """A key and its client as the database has them, read at most once per `cache_s` per process (a busy
        client would otherwise cost a read transaction per request): a disable or rotation by another process
        takes effect within that long; in this one, at once."""
        cached = self._keys.get(key_id)
        if cached is not None and time.monotonic() - cached[0] < self._cache_s:
            return cached[1]
        async with self._db.read() as session:
            row = (await session.execute(
                select(ClientKey, Client).join(Client, Client.id == ClientKey.client_id)
                .where(ClientKey.key_id == key_id))).first()
            if row is None:
                return None
            found, client = row
            signing = tuple((sealed, until) for sealed, until in (await session.execute(
                select(ClientKey.signing_secret_sealed, ClientKey.expires_at)
                .where(ClientKey.client_id == client.id))).all())
        key = _Key(found.id, _view(client), found.key_hash, found.key_sealed, found.expires_at, found.last_used_at,
                   signing)
        if len(self._keys) > 10_000:
            self._keys.clear()
        self._keys[key_id] = (time.monotonic(), key)
        return key

    def _same_key(self, found: _Key, key: str) -> bool:
        if found.key_hash is not None:
            return hmac.compare_digest(found.key_hash, _hash(key))
        return found.key_sealed is not None and hmac.compare_digest(self._seal().open(found.key_sealed).encode(),
                                                                    key.encode())

    def _check_signature(self, signing_secrets: Sequence[str], headers: Mapping[str, str], raw_body: bytes,
                         now: datetime) -> str:
        timestamp, nonce, signature = (headers.get(h, "") for h in ("X-Timestamp", "X-Nonce", "X-Signature"))
        if not timestamp.isdigit() or len(timestamp) > 12 or abs(int(timestamp) - now.timestamp()) > self._skew:
            raise Unauthorized("timestamp missing or outside ±300 s")
        if not _NONCE.fullmatch(nonce):
            raise Unauthorized("nonce missing or malformed")
        if not _HEX.fullmatch(signature):
            raise Unauthorized("signature missing or malformed")
        if not any(hmac.compare_digest(request_signature(s, timestamp, nonce, raw_body), signature)
                   for s in signing_secrets):
            raise Unauthorized("signature mismatch")
        return nonce

    async def allowed_origins(self) -> set[str]:
        """Every enabled client's browser origins (a CORS preflight names no client)."""
        async with self._db.read() as session:
            lists = (await session.scalars(select(Client.origins).where(Client.disabled_at.is_(None)))).all()
        return {origin for origins in lists for origin in (origins or ())}

    async def forward_target(self, client_id: int) -> ForwardTarget:
        now = self._clock.now()
        sealer = self._seal()
        async with self._db.read() as session:
            client = await session.get(Client, client_id)
            if client is None:
                raise NotFound(f"no client #{client_id}")
            keys = (await session.scalars(select(ClientKey).where(
                ClientKey.client_id == client_id, or_(ClientKey.expires_at.is_(None), ClientKey.expires_at > now))
                .order_by(ClientKey.id.desc()))).all()
        if not keys:
            raise NotFound(f"client {client.name} has no valid credentials")
        worker_key = None
        if client.worker:
            # The key the bot last authenticated with is the one it has configured; the newest if it used none.
            used = max(keys, key=lambda k: (k.last_used_at is not None, k.last_used_at or now, k.id))
            worker_key = sealer.open(used.key_sealed) if used.key_sealed else None
        return ForwardTarget(client.callback_url, tuple(sealer.open(k.webhook_secret_sealed) for k in keys),
                             worker_key)

    async def forget_nonces(self) -> int:
        """Nonces older than the replay window are of no use any more (a periodic job)."""
        async with self._db.write() as session:
            return rows_changed(await session.execute(delete(ApiNonce).where(
                ApiNonce.seen_at < self._clock.now() - self._nonce_window - timedelta(seconds=self._skew))))


def summary_json(s: ClientSummary) -> dict[str, Any]:
    return {"client": s.name, "worker": s.worker, "disabled": s.disabled, "callback_url": s.callback_url,
            "owed": s.owed, "receivable": s.receivable, "deposits": s.deposits, "paid": s.paid,
            "forwards_waiting": s.forwards_waiting, "forwards_failed": s.forwards_failed}
