"""What a gateway's word does to a payment, durably and exactly once: verify, confirm what the signature does
not cover, batch, lock, run the pure state machine (services/payment_machine.py), write what it returns.

Notifications are applied in batches (see services/batcher.py), each batch in one transaction:

1. events already stored under (gateway, event_key), or repeated within the batch, are duplicates: no work;
2. the batch's accounts (each payment's account and its owner's receivable, suspense) are locked in id order,
   then its
   payments in id order (FOR UPDATE on PostgreSQL; SQLite's write transaction is exclusive), and the state
   machine runs on them in memory, in arrival order, so a later item sees an earlier one's effect;
3. the results are written with a few set-based statements: payment rows, transfers (services/ledger.py:
   unique references such as `topup:<payment id>` make a second credit impossible whatever the code does),
   outbox notices (unique dedupe keys), and the events themselves (unique key: a concurrent process that
   applied the same event makes this batch fail and retry, and then see it as a duplicate).

State only moves forward: a late `pending` or `expire` after `settlement` finds nothing to do.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import String, and_, bindparam, case, cast, func, insert, literal, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from services import forwarding, ledger
from services.batcher import RetryBatch, WriteBatcher
from services.clock import Clock
from services.errors import BadSignature, LedgerConflict
from services.escrow import fund_order
from services.kinds import AccountKind, DepositFormat, PaymentPurpose, PaymentStatus
from services.outbox import notice_row, queue_notices
from services.payment_machine import (
    ADMIN_EVENTS,
    IN_SUSPENSE,
    Event,
    Funds,
    Notice,
    PaymentState,
    Step,
    funds_after,
    transition,
)
from services.payments import CallbackAnswer, Notification, PaymentGateway
from storage.db import Database
from storage.models import Account, AdminAction, Client, Deposit, GatewayEvent, Payment, User
from storage.queries import dialect_of, insert_or_skip

log = logging.getLogger(__name__)

NOTIFYING = {"credited", "held", "failed", "expired", "reversed", "refunded"}
_PAYMENT_COLUMNS = (Payment.id, Payment.order_id, Payment.user_id, Payment.gateway, Payment.amount, Payment.status,
                    Payment.purpose, Payment.paid_amount, Payment.refunded_amount, Payment.credited_at,
                    Payment.gateway_ref, Payment.flag_reason, Payment.method, Payment.jastip_order_id,
                    Payment.paid_at)

# A batch's payments with everything settling them needs, built once (a statement per batch otherwise costs its
# construction in Python): the payer, the payment's account and the receivable of whoever the money belongs to,
# and for a deposit its client bot.
_OWES = aliased(Account)
_OWES_KEY = case((Payment.deposit_id.is_not(None), literal("client:") + cast(Deposit.client_id, String)),
                 else_=cast(Payment.user_id, String))
_PAYMENTS_WITH_OWNERS = (
    select(*_PAYMENT_COLUMNS, Account.kind, Account.key, Account.user_id.label("owner"),
           Account.id.label("account_row"), Account.balance.label("account_balance"),
           Account.status.label("account_status"), _OWES.id.label("owes_row"), _OWES.balance.label("owes_balance"),
           _OWES.status.label("owes_status"), User.channel, User.external_id, User.language,
           Deposit.id.label("deposit_row"), Deposit.client_id, Deposit.deposit_id.label("client_deposit_id"),
           Deposit.user_ref, Deposit.amount.label("deposit_amount"), Deposit.format, Client.name.label("client_name"))
    .outerjoin(User, User.id == Payment.user_id)
    .outerjoin(Account, Account.id == Payment.account_id)
    .outerjoin(Deposit, Deposit.id == Payment.deposit_id)
    .outerjoin(Client, Client.id == Deposit.client_id)
    .outerjoin(_OWES, and_(_OWES.kind == AccountKind.RECEIVABLE.value, _OWES.key == _OWES_KEY))
    .where(Payment.order_id.in_(bindparam("orders", expanding=True)))
    .order_by(Payment.id))
_PAYMENTS_LOCKED = _PAYMENTS_WITH_OWNERS.with_for_update(of=Payment.__table__)


@dataclass(frozen=True)
class Outcome:
    """What happened: credited, duplicate, unknown_order, held, failed, expired, pending, reversed,
    refunded, no_change, gateway_mismatch."""

    result: str
    order_id: str
    payment_id: int | None = None
    user_id: int | None = None


@dataclass(frozen=True)
class CallbackReply:
    outcome: Outcome
    answer: CallbackAnswer


@dataclass(frozen=True)
class _Item:
    notification: Notification
    source: str
    any_gateway: bool = False  # a local decision (expiry, an admin) rather than a gateway's word
    event: Event | None = None  # an admin's event instead of the notification's
    audit: dict[str, Any] | None = None  # an admin's action: its audit row, written only when it changed something


@dataclass(frozen=True)
class _Payer:
    channel: str
    external_id: str
    language: str


@dataclass(frozen=True)
class _ClientDeposit:
    facts: forwarding.DepositFacts
    paid_at: datetime | None


@dataclass
class _Loaded:
    states: dict[str, PaymentState]  # by order id
    original: dict[int, PaymentState]  # by payment id, as read
    payers: dict[int, _Payer]  # by user id
    funds: dict[ledger.Ref, Funds]  # by the payment's account (a payer's wallet, a client bot's account)
    accounts: dict[ledger.Ref, ledger.AccountRow]
    orders: dict[int, int]  # payment id -> the jastip order it pays (purpose "order")
    deposits: dict[int, _ClientDeposit]  # payment id -> the deposit it pays (purpose "deposit")


def event_of(n: Notification) -> Event:
    return Event(status=n.status, raw_status=n.raw_status, amount=n.amount, refund_amount=n.refund_amount,
                 refunded_total=n.refunded_total, reverses_success=n.reverses_success, gateway_ref=n.gateway_ref,
                 method=n.method, fee=n.fee)


class Settlement:
    def __init__(
        self,
        db: Database,
        gateways: Mapping[str, PaymentGateway],
        clock: Clock,
        *,
        admins: list[tuple[str, str]],
        on_notice: Callable[[], None] = lambda: None,
        max_batch: int = 128,
        ship_by_days: float = 30.0,
        settle_hours: float = 24.0,
        reversible_methods: Sequence[str] = ("credit_card", "card", "vc"),
    ) -> None:
        self._ship_by = timedelta(days=ship_by_days)  # an order paid by link must be shipped by deadline + this
        self._settle = timedelta(hours=settle_hours)
        self._reversible = {m.lower() for m in reversible_methods}
        self._db = db
        self._gateways = gateways
        self._clock = clock
        self._admins = admins
        self._on_notice = on_notice
        self.batcher: WriteBatcher[_Item, Outcome] = WriteBatcher(db, self._apply_batch, max_batch=max_batch)
        self._gateways_seen: dict[str, ledger.AccountRow] = {}  # derived accounts: read once, never locked
        self._events_stored: set[tuple[str, str]] = set()  # events found stored when a batch was redone

    def gateway(self, name: str) -> PaymentGateway | None:
        return self._gateways.get(name)

    async def receive_callback(self, gateway_name: str, raw_body: bytes, headers: Mapping[str, str]) -> CallbackReply:
        """Verify, parse and apply one callback; returns only after the resulting state is committed.

        Raises BadSignature / MalformedCallback (nothing changed) or StorageUnavailable.
        """
        gateway = self._gateways[gateway_name]
        notification = gateway.parse_callback(raw_body, headers)
        if gateway.must_confirm(notification):
            await self._confirm(gateway, notification)
        outcome = await self.apply(notification, source="callback")
        return CallbackReply(outcome, gateway.callback_answer)

    async def _confirm(self, gateway: PaymentGateway, notification: Notification) -> None:
        """An outcome the signature does not cover is applied only if the status API agrees. The API
        unreachable -> GatewayUnavailable (503, the gateway retries); a disagreement -> BadSignature (401).
        An unknown order, a repeat, or a late failure after success changes nothing: no need to ask."""
        async with self._db.read() as session:
            local = await session.scalar(select(Payment.status).where(Payment.order_id == notification.order_id,
                                                                      Payment.gateway == gateway.name))
        late_failure = notification.status in ("failed", "expired") and not notification.reverses_success
        harmless = local == "paid" and late_failure
        if local is None or local == notification.status or harmless:  # nothing would change
            return
        confirmed = await gateway.fetch_status(notification.order_id, notification.gateway_ref)
        if confirmed is None or confirmed.status != notification.status:
            said = confirmed.raw_status if confirmed else "no such transaction"
            log.warning("%s callback for %s says %s but the status API says %s: refused", gateway.name,
                        notification.order_id, notification.raw_status, said)
            raise BadSignature(f"{notification.raw_status} not confirmed by the status API ({said})")

    async def apply(self, notification: Notification, *, source: str) -> Outcome:
        """Apply a verified notification durably (batched with concurrent ones into one commit)."""
        return await self._submit(_Item(notification, source))

    async def expire_stale(self, payment_id: int, order_id: str) -> Outcome:
        """The gateway never heard of this attempt and the grace window is over: expire it locally."""
        local = Notification(gateway="local", order_id=order_id, event_key=f"local-expire:{payment_id}",
                             status="expired", raw_status="local_expire", amount=None)
        return await self._submit(_Item(local, "reconcile", any_gateway=True))

    async def _submit(self, item: _Item) -> Outcome:
        try:
            outcome = await self.batcher.submit(item)
        except LedgerConflict as exc:
            # A bug or a tampered database, never a retry: nothing was written; admins must look now.
            log.error("payment %s: %s", item.notification.order_id, exc)
            await self.alert_conflict(exc)
            raise
        n = item.notification
        level = logging.WARNING if outcome.result in ("held", "unknown_order", "gateway_mismatch") else logging.INFO
        log.log(level, "payment event %s %s order=%s status=%s -> %s",
                n.gateway, item.source, n.order_id, n.raw_status, outcome.result)
        if outcome.result in NOTIFYING:
            self._on_notice()
        return outcome

    async def alert_conflict(self, exc: LedgerConflict) -> None:
        """Tell every admin, once per reference, that the ledger refused a transfer."""
        now = self._clock.now()
        rows = [notice_row(channel=channel, chat_id=chat_id, language="id", template="admin_ledger_conflict",
                           params={"reference": exc.reference}, now=now,
                           dedupe_key=f"admin:conflict:{exc.reference}:{channel}:{chat_id}"[:128])
                for channel, chat_id in self._admins]
        if not rows:
            return
        try:
            async with self._db.write() as session:
                await queue_notices(session, rows)
        except Exception:
            log.exception("could not queue the ledger-conflict alert")
        self._on_notice()

    async def admin_event(self, order_id: str, status: str, *, admin_id: int, reason: str) -> Outcome:
        """An admin's decision on a held payment (one of ADMIN_EVENTS), applied like a gateway's word: batched,
        locked, exactly once (its event key makes a second tap a duplicate), and audited in the same commit."""
        if status not in ADMIN_EVENTS:
            raise ValueError(f"not an admin event: {status}")
        local = Notification(gateway="admin", order_id=order_id, event_key=f"admin:{status}:{order_id}",
                             status="ignored", raw_status=status, amount=None)
        audit = {"admin_id": admin_id, "action": status.removeprefix("admin_"), "target": order_id,
                 "reason": reason}
        return await self._submit(_Item(local, "admin", any_gateway=True,
                                        event=Event(status=status),  # type: ignore[arg-type]
                                        audit=audit))

    async def _apply_batch(self, session: AsyncSession, items: Sequence[_Item]) -> list[Outcome]:
        now = self._clock.now()
        loaded = await self._load(session, items, now)
        # Events are not looked up first: the state machine makes a repeat change nothing, and the events' own
        # INSERT … ON CONFLICT DO NOTHING RETURNING (last in the batch) says which were stored before. Only when
        # such a repeat did change something (a refund notice that names no running total) is the batch redone,
        # with those events known as stored.
        stored = {(i.notification.gateway, i.notification.event_key) for i in items} & self._events_stored
        effects: list[tuple[tuple[str, str], int, bool]] = []  # (event, its outcome's index, did it change anything)
        moves: list[ledger.Move] = []
        outbox: list[dict[str, Any]] = []
        events: list[dict[str, Any]] = []
        outcomes: list[Outcome] = []
        audits: list[dict[str, Any]] = []
        seen: set[tuple[str, str]] = set()
        for item in items:
            n = item.notification
            key = (n.gateway, n.event_key)
            if key in stored or key in seen:
                outcomes.append(Outcome("duplicate", n.order_id))
                continue
            seen.add(key)
            changed = False
            state = loaded.states.get(n.order_id)
            if state is None:
                outcome = Outcome("unknown_order", n.order_id)
            elif not item.any_gateway and state.gateway != n.gateway:
                outcome = Outcome("gateway_mismatch", n.order_id, state.id, state.user_id)
            else:
                step = transition(state, item.event or event_of(n), loaded.funds[state.account])
                self._take(step, loaded, moves, outbox, now)
                outcome = Outcome(step.outcome, n.order_id, state.id, state.user_id)
                changed = bool(step.moves or step.notices) or step.state != state
                if item.audit is not None and step.outcome != "no_change":
                    amount = sum(m.amount for m in step.moves if m.payment_id == state.id and m.kind != "repay")
                    audits.append({**item.audit, "amount": amount or None, "created_at": now})
            effects.append((key, len(outcomes), changed))
            outcomes.append(outcome)
            events.append({"gateway": n.gateway, "event_key": n.event_key, "order_id": n.order_id[:100],
                           "status": n.raw_status[:32], "source": item.source, "outcome": outcome.result,
                           "payload": n.payload, "received_at": now})
        await self._write(session, loaded, moves, outbox, now)
        await self._fund_orders(session, loaded, now)
        if audits:
            await session.execute(insert(AdminAction.__table__), audits)
        new = await self._store_events(session, events)
        before = [(key, index, changed) for key, index, changed in effects if key not in new]
        if any(changed for _, _, changed in before):
            if len(self._events_stored) > 100_000:
                self._events_stored.clear()
            self._events_stored.update(key for key, _, _ in before)
            raise RetryBatch(f"{len(before)} event(s) of this batch were applied before")
        for _, index, _ in before:
            outcomes[index] = Outcome("duplicate", outcomes[index].order_id)
        return outcomes

    @staticmethod
    async def _store_events(session: AsyncSession, events: list[dict[str, Any]]) -> set[tuple[str, str]]:
        """Store the batch's events; the ones that were new (a unique key decides, across processes)."""
        if not events:
            return set()
        table = GatewayEvent.__table__
        inserted = await session.execute(insert_or_skip(session, table, ["gateway", "event_key"])
                                         .returning(table.c.gateway, table.c.event_key), events)
        return {(gateway, key) for gateway, key in inserted.all()}

    def _take(self, step: Step, loaded: _Loaded, moves: list[ledger.Move], outbox: list[dict[str, Any]],
              now: datetime) -> None:
        """Keep a step's results for the batch's writes, and its effect on the payer's funds for the next item."""
        state = step.state
        loaded.states[state.order_id] = state
        moves.extend(step.moves)
        loaded.funds[state.account] = funds_after(state, loaded.funds[state.account], step.moves)
        for notice in step.notices:
            outbox.extend(self._notice_rows(notice, state, loaded, now))

    def _notice_rows(self, notice: Notice, state: PaymentState, loaded: _Loaded,
                     now: datetime) -> list[dict[str, Any]]:
        deposit = loaded.deposits.get(state.id)
        if notice.admins:
            params = dict(notice.params)
            if deposit is not None:  # admins are told whose deposit it is
                params.update(client=deposit.facts.client, deposit_id=deposit.facts.deposit_id)
            return [notice_row(channel=channel, chat_id=chat_id, language="id", template=notice.template,
                               params=params, now=now,
                               dedupe_key=f"admin:{notice.key}:{state.id}:{channel}:{chat_id}")
                    for channel, chat_id in self._admins]
        if notice.forward:
            if deposit is None:
                return []
            paid_at = deposit.paid_at or (now if state.paid_amount is not None else None)
            # What reached the client's account: the bill, or what an admin credited of another amount.
            credited = (state.paid_amount if state.paid_amount is not None else state.amount) \
                if state.credited else None
            row = forwarding.event_row(deposit.facts, notice.template, status=state.status, reference=state.order_id,
                                       gateway_reference=state.gateway_ref, paid_at=paid_at, gateway=state.gateway,
                                       now=now, amount=credited, refunded=state.refunded_amount)
            return [row] if row is not None else []
        assert state.user_id is not None, "a payer's notice names its payer"
        payer = loaded.payers[state.user_id]
        return [notice_row(channel=payer.channel, chat_id=payer.external_id, language=payer.language,
                           template=notice.template, params=dict(notice.params), now=now,
                           dedupe_key=f"{notice.key}:{state.id}")]

    async def _load(self, session: AsyncSession, items: Sequence[_Item], now: datetime) -> _Loaded:
        # One lock order for every writer: the accounts first, then the payments, each by ascending id (two
        # processes settling batches that share users deadlocked when payments were locked first).
        order_ids = list({i.notification.order_id for i in items})
        # Plain rows, not ORM objects: a batch reads a hundred payments, and hydrating entities it never changes
        # through the ORM cost more than the query (the writes below are set-based statements).
        rows = (await session.execute(_PAYMENTS_WITH_OWNERS, {"orders": order_ids})).all()
        refs: set[ledger.Ref] = set()
        if self._may_touch_suspense(items, {row.order_id: row for row in rows}):
            refs.add(ledger.SUSPENSE)  # locked only when needed: every settling batch would queue on it
        orders: dict[int, int] = {}
        for row in rows:
            # The gateway's (derived, never locked) account too: read here, not again when the moves are posted.
            refs |= {_account_of(row), _receivable_of(row), ledger.gateway(row.gateway)}
            if row.kind is not None:
                refs.add(ledger.Ref(AccountKind(row.kind), row.key, row.owner))
            if row.jastip_order_id is not None:
                orders[row.id] = row.jastip_order_id
                refs.add(ledger.escrow(row.jastip_order_id, row.user_id))
        if dialect_of(session) == "sqlite":
            # One writer and no row locks: the accounts the payments query joined are current; only the others
            # (a first receivable, suspense, an escrow, a gateway not seen yet) cost a statement.
            accounts = self._joined(rows)
            missing = [ref for ref in refs if ref not in accounts]
            if missing:
                found = await ledger.accounts(session, missing, now)
                accounts.update(found)
                self._gateways_seen.update({r.key: a for r, a in found.items() if r.kind is AccountKind.GATEWAY})
        else:
            accounts = await ledger.accounts(session, refs, now)  # locked, in id order, before the payments
        if dialect_of(session) != "sqlite" and rows:
            # Locked in id order (the query's), each row as the lock saw it (PostgreSQL re-reads a locked row
            # that another writer changed meanwhile); the joined rows are static or read locked above.
            rows = (await session.execute(_PAYMENTS_LOCKED, {"orders": order_ids})).all()
        states: dict[str, PaymentState] = {}
        payers: dict[int, _Payer] = {}
        funds: dict[ledger.Ref, Funds] = {}
        deposits: dict[int, _ClientDeposit] = {}
        for row in rows:
            account, receivable = _account_of(row), _receivable_of(row)
            states[row.order_id] = PaymentState(
                id=row.id, order_id=row.order_id, user_id=row.user_id, gateway=row.gateway,
                amount=row.amount, status=PaymentStatus(row.status), account=account,
                purpose=PaymentPurpose(row.purpose), receivable=receivable, paid_amount=row.paid_amount,
                refunded_amount=row.refunded_amount, credited=row.credited_at is not None,
                gateway_ref=row.gateway_ref, flag_reason=row.flag_reason, method=row.method)
            if row.user_id is not None:
                payers[row.user_id] = _Payer(row.channel, row.external_id, row.language)
            if row.deposit_row is not None:
                facts = forwarding.DepositFacts(row.deposit_row, row.client_id, row.client_deposit_id, row.user_ref,
                                                row.deposit_amount, DepositFormat(row.format), row.client_name)
                deposits[row.id] = _ClientDeposit(facts, row.paid_at)
            funds[account] = Funds(accounts[account].balance, accounts[receivable].balance)
        return _Loaded(states, {st.id: st for st in states.values()}, payers, funds, accounts, orders, deposits)

    def _joined(self, rows: Sequence[Any]) -> dict[ledger.Ref, ledger.AccountRow]:
        """The accounts the payments query read along (each payment's own and its owner's receivable), and the
        gateways' (derived: their id is all a transfer needs, and it never changes)."""
        found: dict[ledger.Ref, ledger.AccountRow] = {}
        for row in rows:
            if row.account_row is not None:
                found[_account_of(row)] = ledger.AccountRow(row.account_row, row.kind, row.key, row.owner,
                                                            row.account_balance, row.account_status)
            if row.owes_row is not None:
                owes = _receivable_of(row)
                found[owes] = ledger.AccountRow(row.owes_row, owes.kind.value, owes.key, owes.user_id,
                                                row.owes_balance, row.owes_status)
            seen = self._gateways_seen.get(row.gateway)
            if seen is not None:
                found[ledger.gateway(row.gateway)] = seen
        return found

    async def _fund_orders(self, session: AsyncSession, loaded: _Loaded, now: datetime) -> None:
        """Order payments credited in this batch: their money, now in the buyer's wallet, moves on into the order's
        escrow — only if the order still waits for exactly that money (the second of two linked transfers, in the
        same transaction). Otherwise it stays in the wallet and the buyer is told why."""
        for state in loaded.states.values():
            order_id = loaded.orders.get(state.id)
            if order_id is None or not state.credited or loaded.original[state.id].credited:
                continue
            reversible = (state.method or "").lower() in self._reversible
            assert state.user_id is not None
            await fund_order(session, order_id, state.user_id, state.paid_amount or state.amount, now,
                             known=loaded.accounts, payment_code=state.order_id, ship_by=self._ship_by,
                             settles_at=now + self._settle if reversible else None)

    @staticmethod
    def _may_touch_suspense(items: Sequence[_Item], payments: Mapping[str, Any]) -> bool:
        """Whether this batch may move money into or out of suspense: an admin's decision, a payment whose
        money waits there, or a payment notified with another amount than its bill."""
        for item in items:
            payment = payments.get(item.notification.order_id)
            if payment is None:
                continue
            if item.event is not None or payment.status in IN_SUSPENSE:
                return True
            amount = item.notification.amount
            if amount is not None and amount != payment.amount:
                return True
        return False

    async def _write(self, session: AsyncSession, loaded: _Loaded, moves: list[ledger.Move],
                     outbox: list[dict[str, Any]], now: datetime) -> None:
        changed = [st for st in loaded.states.values() if st != loaded.original[st.id]]
        if changed:
            table = Payment.__table__
            # The first time a payment is paid or credited, its moment is kept (coalesce never overwrites it).
            await session.execute(
                update(table)
                .where(table.c.id == bindparam("pid"), table.c.status == bindparam("was"))
                .values(status=bindparam("to"), updated_at=now,
                        paid_at=func.coalesce(table.c.paid_at, bindparam("paid_at")),
                        credited_at=func.coalesce(table.c.credited_at, bindparam("credited_at")),
                        gateway_ref=bindparam("ref"), flag_reason=bindparam("flag"),
                        paid_amount=bindparam("paid_amount"), refunded_amount=bindparam("refunded"),
                        method=bindparam("method")),
                [{"pid": st.id, "was": loaded.original[st.id].status.value, "to": st.status.value,
                  "paid_at": now if st.paid_amount is not None else None,
                  "credited_at": now if st.credited else None,
                  "ref": st.gateway_ref, "flag": st.flag_reason, "paid_amount": st.paid_amount,
                  "refunded": st.refunded_amount, "method": st.method} for st in changed],
            )
        # Every move is a state change the conditional UPDATE above just made: its reference is new.
        await ledger.post(session, moves, now, known=loaded.accounts, expect_new=True)
        if outbox:
            await queue_notices(session, outbox)


def _account_of(row: Any) -> ledger.Ref:
    """Where a payment's money goes: its account as stored (a wallet, a client bot's account)."""
    if row.kind is not None:
        return ledger.Ref(AccountKind(row.kind), row.key, row.owner)
    return ledger.wallet(row.user_id)


def _receivable_of(row: Any) -> ledger.Ref:
    """Who owes us when that money was taken back after it was spent: the payer, or the deposit's client bot."""
    if row.deposit_row is not None:
        return ledger.client_receivable(row.client_id)
    return ledger.receivable(row.user_id)
