"""Crash anywhere: the real server in its own process, `kill -9` at seeded random moments under load.

Each round seeds new pending Midtrans payments and a new product, then drives, all at once:
  * a callback storm, retried until answered 200 as gateways do (10 % sent twice; 20 % never sent, so
    that only the reconciler, asking the fake status API, can credit them);
  * participants ordering the new product (more orders than stock), as Telegram updates retried until 200;
  * a paid broadcast by the jastiper (BROADCAST, then the Send button);
  * escrow: buyers on an otomatis trip pay orders from their wallets ("Ya, bayar"), then the jastiper ships and
    the buyer confirms receipt (release to earnings, fee to revenue), or the jastiper refuses the paid order, or
    the buyer cancels it (refunds);
  * payouts: the (verified) jastiper withdraws earnings ("Ya, tarik …") through a fake Xendit on loopback that
    sometimes loses its answer after making the payout (504) or is down before making it (503), then finishes
    each payout it made — succeeded or failed — and sends its callback until it is answered 200.
At a seeded moment the server is killed with SIGKILL and started again at once; the load keeps retrying.
When everything is quiet, the invariants are checked over the whole history:
  - every payment credited exactly once (one `topup:<id>` ledger entry each), none lost;
  - every balance equals the sum of its ledger entries, none negative;
  - no product oversold: stock >= 0 and stock + reserved quantities == the stock it was given;
  - every credit notice delivered at least once; duplicates (sends in flight at the kill) are counted,
    and may not exceed what one process can have in flight (one outbox batch);
  - every finished broadcast: charged + released == recipients, and the ledger says -charged exactly;
  - every otomatis order's escrow holds what its state says (its total while paid or shipped, nothing
    otherwise; closed once released or refunded), and no order is both released and refunded;
  - every payout ends completed with its hold posted, or failed with its hold voided, or `unknown` (visible to
    admins) — never both, never lost — and the provider made at most one transfer per payout that did not
    definitely fail (across every attempt and every kill).

tests/test_crash.py runs a few rounds on SQLite and PostgreSQL; bench/crash.py runs hundreds.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from sqlalchemy import func, insert, select, update

from services import books, ledger
from storage.db import Database
from storage.migrate import upgrade
from storage.models import (
    Account,
    Broadcast,
    BroadcastDelivery,
    Order,
    OutboxMessage,
    Participant,
    Payment,
    Payout,
    PayoutAccount,
    Product,
    Transfer,
    Trip,
    User,
)
from tests.support.midtrans import FakeMidtrans, MidtransOrder
from tests.support.payouts import FakeXenditPayouts
from tests.support.processes import ServerProcess
from tests.support.telegram import FakeBotAPI, telegram_callback_update, telegram_text_update

SECRET = "crash-secret"
JASTIPER = 699_999
FIRST_USER = 700_000
PRICE = 500
OUTBOX_BATCH = 200
ACTIVE_ORDERS = ("pending", "proof_submitted", "confirmed", "shipped", "received")  # orders that hold stock
ESCROW_PRICE = 40_000


@dataclass
class RoundResult:
    number: int
    killed_after_s: float
    restart_s: float
    payments: int
    credited_by_callback: int
    duplicates: int
    violations: list[str] = field(default_factory=list)
    escrow: dict[str, int] = field(default_factory=dict)  # otomatis orders by state, over the whole history
    payouts: dict[str, int] = field(default_factory=dict)  # payouts by state, over the whole history


@dataclass
class CrashHarness:
    workdir: Path
    database_url: str
    seed: int
    users: int = 30
    participants: int = 25
    payments_per_round: int = 120
    stock_per_round: int = 10
    escrow_orders_per_round: int = 8
    payouts_per_round: int = 4
    max_kill_after_s: float = 1.5
    rng: random.Random = field(init=False)
    _updates: int = field(default=0, init=False)
    _stock_given: dict[int, int] = field(default_factory=dict, init=False)
    _duplicates_seen: int = field(default=0, init=False)

    async def __aenter__(self) -> CrashHarness:
        self.rng = random.Random(self.seed)
        self.bot = FakeBotAPI()
        self.midtrans = FakeMidtrans()
        self.xendit = FakeXenditPayouts()
        await self.bot.start()
        await self.midtrans.start()
        await self.xendit.start()
        self.db = Database(self.database_url)
        await upgrade(self.db)
        await self._seed_people()
        self.server = ServerProcess(self.workdir, self.database_url, self._env(),
                                    log_path=self.workdir / "server.log")
        await self.server.start()
        self.http = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10))
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()
        await self.server.stop()
        await self.db.close()
        await self.bot.stop()
        await self.midtrans.stop()
        await self.xendit.stop()

    def _env(self) -> dict[str, str]:
        return {
            "BOT_PAYMENTS__GATEWAYS": '["midtrans"]',
            "BOT_PAYMENTS__MIDTRANS__SERVER_KEY": self.midtrans.server_key,
            "BOT_PAYMENTS__MIDTRANS__API_BASE_URL": self.midtrans.url,
            "BOT_PAYMENTS__MIDTRANS__SNAP_BASE_URL": self.midtrans.url,
            "BOT_TELEGRAM__TOKEN": self.bot.token, "BOT_TELEGRAM__MODE": "webhook",
            "BOT_TELEGRAM__WEBHOOK_SECRET": SECRET, "BOT_TELEGRAM__API_BASE_URL": self.bot.base_url,
            # The fake Bot API does not rate-limit; pacing would only stretch every round.
            "BOT_TELEGRAM__RATE_PER_SECOND": "100000", "BOT_TELEGRAM__PER_CHAT_INTERVAL_S": "0",
            "BOT_OUTBOX__POLL_INTERVAL_S": "0.1", "BOT_OUTBOX__LEASE_S": "2",
            "BOT_OUTBOX__BATCH_SIZE": str(OUTBOX_BATCH),
            "BOT_RECONCILE__INTERVAL_S": "0.5", "BOT_RECONCILE__LEASE_S": "2",
            "BOT_JASTIP__SWEEP_INTERVAL_S": "0.5", "BOT_JASTIP__MEDIA_DIR": str(self.workdir / "media"),
            "BOT_BROADCAST__PRICE_PER_MESSAGE": str(PRICE), "BOT_BROADCAST__PROGRESS_INTERVAL_S": "0.5",
            "BOT_PAYOUTS__PROVIDER": "xendit", "BOT_PAYOUTS__XENDIT__SECRET_KEY": self.xendit.secret_key,
            "BOT_PAYOUTS__XENDIT__CALLBACK_TOKEN": self.xendit.callback_token,
            "BOT_PAYOUTS__XENDIT__BASE_URL": self.xendit.url, "BOT_PAYOUTS__APPROVAL_ABOVE": "1000000000000",
        }

    # --- seeding (directly in the database, as earlier activity would have left it) -------------------

    async def _seed_people(self) -> None:
        now = datetime.now(UTC)
        funds = 1_000_000_000
        async with self.db.write() as session:
            await session.execute(insert(User), [
                {"channel": "telegram", "external_id": str(JASTIPER), "language": "id",
                 "created_at": now, "display_name": "Jastiper"}] + [
                {"channel": "telegram", "external_id": str(FIRST_USER + i), "language": "id",
                 "created_at": now, "display_name": f"U{i}"} for i in range(self.users)])
            owner = await session.scalar(select(User.id).where(User.external_id == str(JASTIPER)))
            await ledger.post(session, [ledger.Move("crash-seed", ledger.ADJUSTMENT, ledger.wallet(owner), funds,
                                                    "adjust"),
                                        ledger.Move("crash-earned", ledger.ADJUSTMENT, ledger.earnings(owner),
                                                    funds, "adjust")], now)
            # A verified jastiper with a confirmed account past its hold (as REKENING and a day would leave it).
            await session.execute(update(User).where(User.id == owner).values(verified_at=now))
            await session.execute(insert(PayoutAccount), [{"user_id": owner, "bank": "bca", "number": "0011223344",
                                                           "holder_name": "Jastiper", "confirmed_at": now,
                                                           "usable_from": now, "created_at": now}])
            await session.execute(insert(Trip), [{"slug": "crash", "title": "Crash trip", "owner_id": owner,
                                                  "deadline_at": now + timedelta(days=30), "status": "open",
                                                  "created_at": now}])
            trip = await session.scalar(select(Trip.id).where(Trip.slug == "crash"))
            ids = (await session.scalars(select(User.id).where(User.id != owner).order_by(User.id))).all()
            await session.execute(insert(Participant), [
                {"trip_id": trip, "user_id": u, "name": f"P{u}", "status": "joined", "joined_at": now,
                 "updated_at": now} for u in ids[: self.participants]])
            await session.execute(insert(Trip), [{"slug": "crashoto", "title": "Crash escrow trip", "owner_id": owner,
                                                  "deadline_at": now + timedelta(days=30), "status": "open",
                                                  "payment_mode": "otomatis", "created_at": now}])
            self._escrow_trip = await session.scalar(select(Trip.id).where(Trip.slug == "crashoto"))
            await session.execute(insert(Participant), [
                {"trip_id": self._escrow_trip, "user_id": u, "name": f"P{u}", "status": "joined", "joined_at": now,
                 "updated_at": now} for u in ids[: self.participants]])
            await ledger.post(session, [ledger.Move(f"crash-fund:{u}", ledger.ADJUSTMENT, ledger.wallet(u), 10_000_000,
                                                    "adjust") for u in ids[: self.participants]], now)
        self._owner = owner
        self._trip = trip
        self._user_ids = list(ids)

    async def _seed_round(self, number: int) -> tuple[str, list[tuple[str, int, dict]]]:
        now = datetime.now(UTC)
        code = f"K{number}"
        payments = []
        for i in range(self.payments_per_round):
            order_id = f"CR-{self.seed}-{number}-{i}"
            amount = 10_000 + self.rng.randrange(0, 200) * 1_000
            self.midtrans.orders[order_id] = MidtransOrder(order_id, amount, {}, {})
            payments.append((order_id, amount, self.midtrans.settle(order_id)))
        async with self.db.write() as session:
            await session.execute(insert(Product), [{"trip_id": self._trip, "code": code, "name": f"Barang {number}",
                                                     "price": 25_000, "stock": self.stock_per_round,
                                                     "created_at": now}])
            product = await session.scalar(select(Product.id).where(Product.code == code))
            await session.execute(insert(Payment), [
                {"order_id": order_id, "user_id": self.rng.choice(self._user_ids), "gateway": "midtrans",
                 "amount": amount, "status": "pending", "created_at": now, "updated_at": now}
                for order_id, amount, _ in payments])
        self._stock_given[product] = self.stock_per_round
        return code, payments

    async def _seed_escrow_orders(self, number: int) -> list[tuple[int, int]]:
        """Unpaid orders on the otomatis trip, as PESAN left them: (order id, buyer's chat)."""
        now = datetime.now(UTC)
        buyers = [self.rng.randrange(self.participants) for _ in range(self.escrow_orders_per_round)]
        async with self.db.write() as session:
            await session.execute(insert(Product), [{"trip_id": self._escrow_trip, "code": f"E{number}",
                                                     "name": f"Titipan {number}", "price": ESCROW_PRICE,
                                                     "stock": self.stock_per_round - len(buyers), "created_at": now}])
            product = await session.scalar(select(Product.id).where(Product.code == f"E{number}"))
            first = int(await session.scalar(select(func.coalesce(func.max(Order.id), 0))) or 0) + 1
            await session.execute(insert(Order), [
                {"id": first + i, "trip_id": self._escrow_trip, "product_id": product,
                 "user_id": self._user_ids[b], "quantity": 1, "unit_price": ESCROW_PRICE, "total": ESCROW_PRICE,
                 "status": "pending", "payment_mode": "otomatis", "created_at": now, "updated_at": now,
                 "expires_at": now + timedelta(days=1)} for i, b in enumerate(buyers)])
        self._stock_given[product] = self.stock_per_round
        return [(first + i, FIRST_USER + b) for i, b in enumerate(buyers)]

    async def _order_status(self, order_id: int) -> str:
        async with self.db.read() as session:
            return str(await session.scalar(select(Order.status).where(Order.id == order_id)))

    async def _step(self, chat: int, deadline: float, order_id: int, waits_for: tuple[str, ...], *,
                    text: str | None = None, data: str | None = None) -> None:
        """A person's step (typed or tapped), sent again if the server lost it in the kill, until the order
        leaves `waits_for` (or a few tries: a step refused for a good reason changes nothing)."""
        for _ in range(4):
            if text is not None:
                await self._telegram(lambda u: telegram_text_update(u, chat, text), deadline)
            else:
                await self._telegram(lambda u: telegram_callback_update(u, chat, data), deadline)
            until = min(deadline, time.monotonic() + 3)
            while time.monotonic() < until:
                if await self._order_status(order_id) not in waits_for:
                    return
                await asyncio.sleep(0.05)

    async def _escrow_life(self, order_id: int, chat: int, deadline: float) -> None:
        """Pay from the wallet, then: ship and receive (release), or the jastiper refuses, or the buyer cancels."""
        code = f"P{order_id}"
        await self._step(chat, deadline, order_id, ("pending",), data=f"ord:payok:{code}")
        path = self.rng.random()
        if path < 0.5:
            await self._step(JASTIPER, deadline, order_id, ("confirmed",), text=f"KIRIM {code} JNE 123")
            await self._step(chat, deadline, order_id, ("shipped",), data=f"ord:recvok:{code}")
        elif path < 0.75:
            await self._step(JASTIPER, deadline, order_id, ("confirmed",), data=f"ord:rf:{code}:stok habis")
        else:
            await self._step(chat, deadline, order_id, ("confirmed",), data=f"ord:bt:{code}")

    async def _payout_status(self, key: str) -> str | None:
        async with self.db.read() as session:
            return await session.scalar(select(Payout.status).where(Payout.request_key == key))

    async def _withdraw(self, number: int, index: int, deadline: float) -> None:
        """The jastiper taps "Ya, tarik Rp…" (tapping again if the server lost the tap in the kill) until the
        payout exists; a double tap is one payout by the button's key."""
        key = f"r{number}w{index}"
        amount = 50_000 + 1_000 * self.rng.randrange(100)
        for _ in range(6):
            await self._telegram(lambda u: telegram_callback_update(u, JASTIPER, f"wd:ok:{amount}:{key}"), deadline)
            until = min(deadline, time.monotonic() + 3)
            while time.monotonic() < until:
                if await self._payout_status(key) is not None:
                    return
                await asyncio.sleep(0.05)

    async def _provider(self, deadline: float, stop: asyncio.Event) -> None:
        """The fake Xendit's back office: every payout it made is finished (80 % succeeded, 20 % failed) and its
        callback sent until answered 200."""
        while not stop.is_set() and time.monotonic() < deadline:
            for key, made in list(self.xendit.made.items()):
                if made.status != "ACCEPTED":
                    continue
                outcome = "SUCCEEDED" if self.rng.random() < 0.8 else "FAILED"
                body, headers = self.xendit.finish(key, outcome, None if outcome == "SUCCEEDED" else "TRANSFER_ERROR")
                await self._post_until_ok("/payouts/xendit/notify", body, headers, deadline)
            await asyncio.sleep(0.1)

    # --- load -----------------------------------------------------------------------------------------

    async def _post_until_ok(self, path: str, body: bytes, headers: dict[str, str], deadline: float) -> int:
        """As gateways and Telegram do: retry until 200. Returns how many attempts it took."""
        attempts = 0
        while time.monotonic() < deadline:
            attempts += 1
            try:
                async with self.http.post(self.server.url + path, data=body, headers=headers) as response:
                    await response.read()
                    if response.status == 200:
                        return attempts
                    if response.status not in (502, 503, 504):
                        raise AssertionError(f"{path} answered {response.status} to a valid request")
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.05)
        raise AssertionError(f"{path}: no 200 before the deadline")

    def _update(self, payload_for) -> bytes:
        self._updates += 1
        return json.dumps(payload_for(self._updates)).encode()

    async def _telegram(self, payload_for, deadline: float) -> None:
        body = self._update(payload_for)  # a retried update keeps its update_id, as Telegram's do
        await self._post_until_ok("/telegram/webhook", body, {"X-Telegram-Bot-Api-Secret-Token": SECRET,
                                                              "Content-Type": "application/json"}, deadline)

    async def _broadcast(self, number: int, deadline: float) -> None:
        """The jastiper types BROADCAST and taps Send, typing/tapping again if the bot never answered (an
        update acknowledged just before the kill is gone, as it would be with Telegram)."""
        text = f"Ronde {number}: barang sudah dibeli"
        while time.monotonic() < deadline:
            seen = len(self.bot.calls)
            await self._telegram(lambda u: telegram_text_update(u, JASTIPER, f"BROADCAST crash {text}"), deadline)
            preview = await self._wait_reply(seen, "Pratinjau siaran", deadline, within=4)
            if preview is None:
                continue
            data = self.bot.keyboard(preview)[0][0]["callback_data"]
            for _ in range(10):
                seen = len(self.bot.calls)
                await self._telegram(lambda u: telegram_callback_update(u, JASTIPER, data), deadline)
                if await self._wait_reply(seen, ("Siaran dikirim", "sudah"), deadline, within=4) is not None:
                    return
            return

    async def _wait_reply(self, seen: int, marker, deadline: float, within: float):
        markers = (marker,) if isinstance(marker, str) else marker
        until = min(deadline, time.monotonic() + within)
        while time.monotonic() < until:
            for call in self.bot.calls[seen:]:
                if (call.method == "sendMessage" and str(call.params.get("chat_id")) == str(JASTIPER)
                        and any(m in str(call.params.get("text", "")) for m in markers)):
                    return call.params
            await asyncio.sleep(0.05)
        return None

    # --- one round ----------------------------------------------------------------------------------

    async def round(self, number: int) -> RoundResult:
        code, payments = await self._seed_round(number)
        deadline = time.monotonic() + 90
        headers = {"Content-Type": "application/json"}
        sent = [p for p in payments if self.rng.random() >= 0.2]  # the rest: only the reconciler credits them
        twice = [p for p in sent if self.rng.random() < 0.1]
        bodies = [json.dumps(note).encode() for _, _, note in sent + twice]
        self.rng.shuffle(bodies)
        gate = asyncio.Semaphore(16)

        async def callback(body: bytes) -> None:
            async with gate:
                await self._post_until_ok("/payments/midtrans/notify", body, headers, deadline)

        async def order(user_index: int) -> None:
            async with gate:
                chat = FIRST_USER + user_index
                await self._telegram(lambda u: telegram_text_update(u, chat, f"PESAN {code}"), deadline)

        escrow_orders = await self._seed_escrow_orders(number)
        orderers = [self.rng.randrange(self.participants) for _ in range(self.stock_per_round * 2)]
        # The provider misbehaves on some creates: the answer lost after the payout was made, or down before.
        self.xendit.script = [self.rng.choice(["ok", "ok", "ok", "lost", "down"]) for _ in range(12)]
        finished = asyncio.Event()
        provider = asyncio.create_task(self._provider(deadline, finished))
        load = asyncio.gather(*(callback(b) for b in bodies), *(order(i) for i in orderers),
                              self._broadcast(number, deadline),
                              *(self._escrow_life(o, chat, deadline) for o, chat in escrow_orders),
                              *(self._withdraw(number, i, deadline) for i in range(self.payouts_per_round)))
        kill_after = self.rng.uniform(0.05, self.max_kill_after_s)
        await asyncio.sleep(kill_after)
        self.server.kill()
        restart = await self.server.start()
        await load
        result = RoundResult(number, round(kill_after, 3), round(restart, 2), len(payments), len(sent), 0)
        quiet = await self._quiet(deadline)
        finished.set()
        await provider
        if not quiet:
            result.violations.append("not quiet: payments, notices, broadcasts or payouts still pending after 90 s")
        await self.check(result)
        return result

    async def _quiet(self, deadline: float) -> bool:
        while time.monotonic() < deadline:
            async with self.db.read() as session:
                unpaid = await session.scalar(select(func.count()).select_from(Payment)
                                              .where(Payment.status != "paid"))
                unsent = await session.scalar(select(func.count()).select_from(OutboxMessage)
                                              .where(OutboxMessage.status == "pending"))
                running = await session.scalar(select(func.count()).select_from(Broadcast)
                                               .where(Broadcast.status == "running"))
                in_flight = await session.scalar(select(func.count()).select_from(Payout).where(
                    Payout.status.in_(("requested", "sending", "processing", "waiting_funds"))))
            if unpaid == 0 and unsent == 0 and running == 0 and in_flight == 0:
                await asyncio.sleep(0.3)  # replies to the last updates may still be on their way
                return True
            await asyncio.sleep(0.1)
        return False

    # --- invariants ---------------------------------------------------------------------------------

    async def check(self, result: RoundResult) -> None:
        bad = result.violations
        # The books' own invariants: Σ debits = Σ credits, every stored balance equals its transfers and none
        # is negative, every credited payment settled exactly once.
        bad.extend(await books.check(self.db))
        async with self.db.read() as session:
            payments = (await session.execute(select(Payment.id, Payment.status, Payment.user_id))).all()
            credits = dict((await session.execute(
                select(Transfer.reference, func.count()).where(Transfer.kind == "topup")
                .group_by(Transfer.reference))).all())
            for payment_id, status, _ in payments:
                count = credits.get(f"topup:{payment_id}", 0)
                if status != "paid" or count != 1:
                    bad.append(f"payment {payment_id}: status {status}, credited {count} times")
            reserved = dict((await session.execute(
                select(Order.product_id, func.sum(Order.quantity)).where(Order.status.in_(ACTIVE_ORDERS))
                .group_by(Order.product_id))).all())
            for product_id, stock in (await session.execute(select(Product.id, Product.stock))).all():
                given = self._stock_given.get(product_id)
                if stock < 0 or (given is not None and stock + int(reserved.get(product_id, 0)) != given):
                    bad.append(f"product {product_id}: stock {stock}, reserved {reserved.get(product_id, 0)}, "
                               f"given {given}")
            credited_per_chat = dict((await session.execute(
                select(User.external_id, func.count()).join(Account, Account.user_id == User.id)
                .join(Transfer, Transfer.credit_id == Account.id)
                .where(Transfer.kind == "topup").group_by(User.external_id))).all())
            failed = await session.scalar(select(func.count()).select_from(OutboxMessage)
                                          .where(OutboxMessage.status == "failed"))
            if failed:
                bad.append(f"{failed} notices failed")
            for broadcast_id, status, recipients, price in (await session.execute(
                    select(Broadcast.id, Broadcast.status, Broadcast.recipients, Broadcast.price))).all():
                settled = dict((await session.execute(
                    select(BroadcastDelivery.settled, func.count())
                    .where(BroadcastDelivery.broadcast_id == broadcast_id)
                    .group_by(BroadcastDelivery.settled))).all())
                # What the broadcast kept: charged to revenue, less what was given back late.
                money = -int(await session.scalar(select(func.coalesce(func.sum(Transfer.amount), 0)).where(
                    Transfer.reference == f"bcpost:{broadcast_id}")) or 0) + int(await session.scalar(
                    select(func.coalesce(func.sum(Transfer.amount), 0)).where(
                        Transfer.reference.like(f"bcrefund:{broadcast_id}:%"))) or 0)
                if status == "running":
                    bad.append(f"broadcast {broadcast_id} still running")
                elif status == "done":
                    charged = settled.get("charged", 0)
                    if charged + settled.get("released", 0) + settled.get("refunded", 0) != recipients \
                            or money != -charged * price:
                        bad.append(f"broadcast {broadcast_id}: {settled} of {recipients}, ledger {money}")
                elif money != 0:
                    bad.append(f"broadcast {broadcast_id} ({status}) moved {money}")
            await self._check_escrows(session, bad)
            await self._check_payouts(session, bad)
            result.payouts = {str(k): int(v) for k, v in (await session.execute(
                select(Payout.status, func.count()).group_by(Payout.status))).all()}
            result.escrow = {str(k): int(v) for k, v in (await session.execute(
                select(Order.status, func.count()).where(Order.payment_mode == "otomatis")
                .group_by(Order.status))).all()}
        received: dict[str, int] = {}
        for call in self.bot.calls:
            if call.method == "sendMessage" and "Saldo bertambah" in str(call.params.get("text", "")):
                chat = str(call.params.get("chat_id"))
                received[chat] = received.get(chat, 0) + 1
        duplicates = 0
        for chat, expected in credited_per_chat.items():
            got = received.get(chat, 0)
            if got < expected:
                bad.append(f"chat {chat}: {expected} credits but {got} credit notices delivered")
            duplicates += max(0, got - expected)
        result.duplicates = duplicates - self._duplicates_seen
        self._duplicates_seen = duplicates
        if result.duplicates > OUTBOX_BATCH:
            bad.append(f"{result.duplicates} duplicate notices: more than one batch in flight at the kill")


    async def _check_payouts(self, session, bad: list[str]) -> None:
        endings: dict[int, list[str]] = {}
        for reference in (await session.scalars(select(Transfer.reference).where(
                Transfer.kind.in_(("payout", "payout-void"))))).all():
            endings.setdefault(int(reference.split(":")[1]), []).append(reference.rsplit(":", 1)[1])
        holds = {key: (balance, status) for key, balance, status in (await session.execute(
            select(Account.key, Account.balance, Account.status).where(Account.kind == "hold",
                                                                      Account.key.like("payout:%")))).all()}
        made: dict[int, int] = {}
        sent_amounts: dict[int, set[int]] = {}
        for key, transfer in self.xendit.made.items():
            payout_id = int(key.split("-")[1])
            sent_amounts.setdefault(payout_id, set()).add(transfer.amount)
            if transfer.status not in ("FAILED", "CANCELLED"):
                made[payout_id] = made.get(payout_id, 0) + 1
        for payout_id, status, amount in (await session.execute(
                select(Payout.id, Payout.status, Payout.amount))).all():
            hold_balance, hold_status = holds.get(f"payout:{payout_id}", (0, None))
            ends = endings.get(payout_id, [])
            if made.get(payout_id, 0) > 1:
                bad.append(f"payout {payout_id}: the provider made {made[payout_id]} transfers")
            if sent_amounts.get(payout_id, {amount}) != {amount}:
                bad.append(f"payout {payout_id} of {amount}: the provider was asked for {sent_amounts[payout_id]}")
            if status == "completed" and (ends != ["send"] or hold_status != "posted" or hold_balance
                                          or made.get(payout_id, 0) != 1):
                bad.append(f"payout {payout_id} completed: transfers {ends}, hold {hold_status} {hold_balance}, "
                           f"made {made.get(payout_id, 0)}")
            elif status == "failed" and (ends != ["void"] or hold_status != "voided" or hold_balance
                                         or made.get(payout_id, 0)):
                bad.append(f"payout {payout_id} failed: transfers {ends}, hold {hold_status} {hold_balance}, "
                           f"made {made.get(payout_id, 0)}")
            elif status not in ("completed", "failed", "unknown"):
                bad.append(f"payout {payout_id}: left {status}")
            elif status == "unknown" and (ends or hold_status != "pending"):
                bad.append(f"payout {payout_id} unknown: transfers {ends}, hold {hold_status}")

    @staticmethod
    async def _check_escrows(session, bad: list[str]) -> None:
        escrows = {int(key): (balance, status) for key, balance, status in (await session.execute(
            select(Account.key, Account.balance, Account.status).where(Account.kind == "escrow"))).all()}
        endings = (await session.scalars(select(Transfer.reference).where(
            Transfer.kind.in_(("order-release", "order-refund"))))).all()
        ended = [reference.rsplit(":", 1)[0] for reference in endings]
        if len(ended) != len(set(ended)):
            bad.append(f"an order both released and refunded: {sorted(endings)}")
        for order_id, status, total in (await session.execute(
                select(Order.id, Order.status, Order.total).where(Order.payment_mode == "otomatis"))).all():
            balance, account_status = escrows.get(order_id, (0, None))
            expected = total if status in ("confirmed", "shipped", "disputed") else 0
            if balance != expected:
                bad.append(f"order P{order_id} ({status}): escrow holds {balance}, expected {expected}")
            if status in ("received", "refunded") and account_status != "closed":
                bad.append(f"order P{order_id} ({status}): escrow not closed")


def summarize(results: list[RoundResult]) -> dict:
    return {
        "rounds": len(results),
        "payments": sum(r.payments for r in results),
        "violations": sum(len(r.violations) for r in results),
        "duplicate_notices": sum(r.duplicates for r in results),
        "rounds_with_duplicates": sum(1 for r in results if r.duplicates),
        "restart_s_max": max((r.restart_s for r in results), default=0.0),
        "escrow_orders": results[-1].escrow if results else {},  # by state, at the end
        "payouts": results[-1].payouts if results else {},  # by state, at the end
        "first_violations": [f"round {r.number}: {v}" for r in results for v in r.violations][:20],
    }


