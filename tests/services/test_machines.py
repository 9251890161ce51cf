"""The pure state machines, exhaustively: every (state × event) pair against a table written out here (not read
from the code), and properties: any duplicated, reordered stream of a payment's notifications ends in the same
state with the same money as the ordered, de-duplicated stream."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services import broadcast_machine, ledger, order_machine
from services.kinds import CREDIT_NORMAL, AccountKind, BroadcastStatus, OrderStatus, PaymentPurpose, PaymentStatus
from services.payment_machine import Event, Funds, PaymentState, owed_by, transition

USER, BILL, CLIENT = 7, 50_000, 3


class Books:
    """An in-memory ledger with the database's rules: references post once (the same way, or it is a conflict)
    and no credit-normal account or receivable goes below zero."""

    def __init__(self) -> None:
        self.balance: dict[ledger.Ref, int] = defaultdict(int)
        self.posted: dict[str, tuple] = {}

    def post(self, moves) -> None:
        for m in moves:
            assert m.amount > 0, m
            seen = self.posted.get(m.reference)
            if seen is not None:
                assert seen == (m.debit, m.credit, m.amount), f"conflict on {m.reference}"
                continue
            self.posted[m.reference] = (m.debit, m.credit, m.amount)
            self.balance[m.debit] += ledger.natural_delta(m.debit.kind, "debit", m.amount)
            self.balance[m.credit] += ledger.natural_delta(m.credit.kind, "credit", m.amount)
        for ref, amount in self.balance.items():
            if ref.kind in CREDIT_NORMAL or ref.kind is AccountKind.RECEIVABLE:
                assert amount >= 0, (ref, amount)

    def funds(self, p: PaymentState | None = None) -> Funds:
        p = p or payment()
        return Funds(self.balance[p.account], self.balance[owed_by(p)])

    def money(self) -> dict[ledger.Ref, int]:
        return {ref: amount for ref, amount in self.balance.items() if amount}


def payment(status: PaymentStatus = PaymentStatus.CREATED, **changes) -> PaymentState:
    return replace(PaymentState(id=1, order_id="TT1", user_id=USER, gateway="midtrans", amount=BILL,
                                status=PaymentStatus.CREATED, account=ledger.wallet(USER)), status=status, **changes)


def deposit(status: PaymentStatus = PaymentStatus.CREATED, **changes) -> PaymentState:
    """A client bot's deposit: no Titip user; its money is owed to the client."""
    return payment(status, user_id=None, purpose=PaymentPurpose.DEPOSIT, account=ledger.client(CLIENT),
                   receivable=ledger.client_receivable(CLIENT), **changes)


KINDS = {"topup": payment, "deposit": deposit}


# --- the payment machine: every state × every event --------------------------------------------------------

EVENTS = {
    "pending": Event("pending"),
    "paid": Event("paid", amount=BILL),
    "paid_other": Event("paid", amount=BILL - 5_000),
    "failed": Event("failed"),
    "expired": Event("expired"),
    "deny_after_paid": Event("failed", reverses_success=True),
    "refund": Event("refunded", amount=BILL, refund_amount=BILL),
    "admin_credit": Event("admin_credit"),
    "admin_refuse": Event("admin_refuse"),
    "admin_refunded_outside": Event("admin_refunded_outside"),
}
COLUMNS = tuple(EVENTS)
_ = None  # no change
TABLE: dict[PaymentStatus, tuple] = {
    # columns: pending, paid, paid another amount, failed, expired, deny after paid, refund, admin credit,
    # admin refuse, admin refunded outside
    PaymentStatus.CREATED: ("pending", "paid", "held", "failed", "expired", "failed", "refunded", _, _, _),
    PaymentStatus.PENDING: (_, "paid", "held", "failed", "expired", "failed", "refunded", _, _, _),
    PaymentStatus.FAILED: (_, "paid", "held", _, _, _, "refunded", _, _, _),
    PaymentStatus.EXPIRED: (_, "paid", "held", _, _, _, "refunded", _, _, _),
    PaymentStatus.PAID: (_, _, _, _, _, "reversed", "refunded", _, _, _),
    PaymentStatus.PARTIALLY_REFUNDED: (_, _, _, _, _, _, "refunded", _, _, _),
    PaymentStatus.HELD: (_, _, _, _, _, _, "refunded", "paid", "refused", "refunded"),
    PaymentStatus.REFUSED: (_, _, _, _, _, _, "refunded", _, _, "refunded"),
    PaymentStatus.REVERSED: (_, _, _, _, _, _, _, _, _, _),
    PaymentStatus.REFUNDED: (_, _, _, _, _, _, _, _, _, _),
}


def as_it_would_be(status: PaymentStatus, kind: str = "topup") -> tuple[PaymentState, Books]:
    """A payment in `status` with the books as reaching that status leaves them."""
    books = Books()
    base = KINDS[kind]()
    paths = {
        PaymentStatus.PAID: ["paid"], PaymentStatus.PARTIALLY_REFUNDED: ["paid", "half_refund"],
        PaymentStatus.HELD: ["paid_other"], PaymentStatus.REFUSED: ["paid_other", "admin_refuse"],
        PaymentStatus.REVERSED: ["paid", "deny_after_paid"], PaymentStatus.REFUNDED: ["paid", "refund"],
        PaymentStatus.PENDING: ["pending"], PaymentStatus.FAILED: ["failed"], PaymentStatus.EXPIRED: ["expired"],
    }
    events = {**EVENTS, "half_refund": Event("refunded", amount=BILL, refunded_total=BILL // 2)}
    for name in paths.get(status, []):
        step = transition(base, events[name], books.funds(base))
        books.post(step.moves)
        base = step.state
    assert base.status is status
    return base, books


def test_the_table_covers_every_payment_state():
    assert set(TABLE) == set(PaymentStatus)


@pytest.mark.parametrize("kind", sorted(KINDS))
@pytest.mark.parametrize("state", list(PaymentStatus))
@pytest.mark.parametrize("event", COLUMNS)
def test_every_payment_state_and_event_moves_as_the_table_says_and_keeps_the_books_whole(state, event, kind):
    before, books = as_it_would_be(state, kind)
    step = transition(before, EVENTS[event], books.funds(before))
    expected = TABLE[state][COLUMNS.index(event)]
    assert step.state.status == (expected or state.value)
    if expected is None:
        assert step.moves == () and step.state == before and step.outcome == "no_change"
    books.post(step.moves)  # refuses a negative wallet or a conflicting reference
    again = transition(step.state, EVENTS[event], books.funds(step.state))  # the same event twice: nothing more
    assert again.state == step.state and again.moves == ()
    if kind == "deposit":  # a deposit's money is the client's: no wallet moves, no chat notice to anyone
        assert not any(ref.kind is AccountKind.WALLET for ref in books.balance)
        assert all(n.admins or n.forward for n in step.notices)


# --- the payment machine: order and repeats do not matter --------------------------------------------------

@st.composite
def notifications(draw):
    """The ordered, de-duplicated truth about one payment: maybe "pending", then paid (the bill or another
    amount), then refunds as cumulative totals."""
    paid = draw(st.sampled_from([BILL, BILL - 5_000, BILL + 1_000]))
    totals = sorted(set(draw(st.lists(st.integers(1, paid), max_size=3))))
    ordered = ([Event("pending")] if draw(st.booleans()) else []) + [Event("paid", amount=paid)]
    ordered += [Event("refunded", amount=paid, refunded_total=t) for t in totals]
    return ordered


def run(events, funds_from: Books | None = None, kind: str = "topup") -> tuple[PaymentState, dict]:
    books = funds_from or Books()
    state = KINDS[kind]()
    for event in events:
        step = transition(state, event, books.funds(state))
        books.post(step.moves)
        state = step.state
    return state, books.money()


@given(notifications(), st.data(), st.sampled_from(sorted(KINDS)))
def test_duplicated_and_reordered_notifications_end_where_the_ordered_ones_do(ordered, data, kind):
    stream = data.draw(st.permutations(ordered + data.draw(st.lists(st.sampled_from(ordered), max_size=6))))
    assert run(stream, kind=kind) == run(ordered, kind=kind)


@given(st.lists(st.integers(0, 3), max_size=6), st.booleans())
def test_repeating_any_notification_of_a_reversed_payment_changes_nothing(repeats, pending_first):
    ordered = ([Event("pending")] if pending_first else []) + [Event("paid", amount=BILL),
                                                                Event("failed", reverses_success=True)]
    stream = list(ordered)
    for index in repeats:  # duplicates right after their original: order kept, repeats added
        position = min(index, len(ordered) - 1)
        stream.insert(stream.index(ordered[position]) + 1, ordered[position])
    assert run(stream) == run(ordered)


def test_a_refund_after_the_money_was_spent_takes_what_is_there_and_books_the_rest_as_owed():
    books = Books()
    state, _ = run([Event("paid", amount=BILL)], books)
    books.post([ledger.Move("spent", ledger.wallet(USER), ledger.REVENUE, 30_000, "hold")])
    step = transition(state, Event("refunded", amount=BILL, refund_amount=BILL), books.funds())
    books.post(step.moves)
    assert step.state.status is PaymentStatus.REFUNDED
    assert books.balance[ledger.wallet(USER)] == 0 and books.balance[ledger.receivable(USER)] == 30_000
    # The next top-up repays it first.
    nxt = replace(payment(), id=2, order_id="TT2")
    step = transition(nxt, Event("paid", amount=BILL), books.funds())
    books.post(step.moves)
    assert books.balance[ledger.wallet(USER)] == 20_000 and books.balance[ledger.receivable(USER)] == 0


def test_a_deposit_is_owed_to_its_client_and_yields_the_event_for_its_server_not_a_chat_notice():
    books = Books()
    step = transition(deposit(), Event("paid", amount=BILL), books.funds(deposit()))
    books.post(step.moves)
    assert [(m.reference, m.debit, m.credit, m.amount) for m in step.moves] == [
        ("deposit:1", ledger.gateway("midtrans"), ledger.client(CLIENT), BILL)]
    assert [(n.template, n.key, n.forward) for n in step.notices] == [("deposit.paid", "paid", True)]
    failed = transition(deposit(), Event("failed"), books.funds(deposit()))
    assert [(n.template, n.forward) for n in failed.notices] == [("deposit.failed", True)]


def test_a_reversed_deposit_takes_back_what_the_client_holds_books_the_rest_and_tells_admins():
    books = Books()
    state, _ = run([Event("paid", amount=BILL)], books, kind="deposit")
    # The operator paid 30 000 of it over to the client already (`clients settle`).
    books.post([ledger.Move("client-settle:3:x", ledger.client(CLIENT), ledger.provider("manual"), 30_000,
                            "client-settle")])
    step = transition(state, Event("failed", reverses_success=True), books.funds(state))
    books.post(step.moves)
    assert step.state.status is PaymentStatus.REVERSED
    assert books.balance[ledger.client(CLIENT)] == 0 and books.balance[ledger.client_receivable(CLIENT)] == 30_000
    assert {n.template for n in step.notices} == {"deposit.reversed", "admin_payment_owed"}
    # The client's next deposit repays what it owes first; its whole amount is still the client's user's.
    nxt = replace(deposit(), id=2, order_id="TT2")
    step = transition(nxt, Event("paid", amount=BILL), books.funds(nxt))
    books.post(step.moves)
    assert books.balance[ledger.client(CLIENT)] == 20_000 and books.balance[ledger.client_receivable(CLIENT)] == 0
    assert [n.template for n in step.notices] == ["deposit.paid"]


def test_a_reversed_deposit_the_client_could_cover_still_tells_admins():
    books = Books()
    state, _ = run([Event("paid", amount=BILL)], books, kind="deposit")
    step = transition(state, Event("failed", reverses_success=True), books.funds(state))
    assert {(n.template, n.admins) for n in step.notices} == {("deposit.reversed", False),
                                                              ("admin_deposit_reversed", True)}


# --- orders ------------------------------------------------------------------------------------------------

Od = OrderStatus
ORDER_TABLE: dict[OrderStatus, tuple] = {
    # columns: proof, proof_rejected, confirm, reject, ship, cancel, expire, pay, receive, refund, complain,
    #          settle_release, settle_refund, trip_cancel, pay_dp, forfeit
    Od.PENDING: (Od.PROOF_SUBMITTED, _, Od.CONFIRMED, Od.REJECTED, _, Od.CANCELLED, Od.EXPIRED, Od.CONFIRMED, _, _,
                 _, _, _, Od.CANCELLED, Od.DP_PAID, _),
    Od.PROOF_SUBMITTED: (Od.PROOF_SUBMITTED, Od.PENDING, Od.CONFIRMED, Od.REJECTED, _, _, _, _, _, _, _, _, _,
                         Od.CANCELLED, _, _),
    Od.DP_PAID: (_, _, _, _, _, _, _, Od.CONFIRMED, _, Od.REFUNDED, _, _, _, _, _, Od.FORFEITED),
    Od.CONFIRMED: (_, _, _, _, Od.SHIPPED, _, _, _, _, Od.REFUNDED, Od.DISPUTED, _, _, _, _, _),
    Od.SHIPPED: (_, _, _, _, _, _, _, _, Od.RECEIVED, _, Od.DISPUTED, _, _, _, _, _),
    Od.DISPUTED: (_, _, _, _, _, _, _, _, _, _, _, Od.RECEIVED, Od.REFUNDED, _, _, _),
    Od.REJECTED: (_,) * 16,
    Od.CANCELLED: (_,) * 16,
    Od.EXPIRED: (_,) * 16,
    Od.RECEIVED: (_,) * 16,
    Od.REFUNDED: (_,) * 16,
    Od.FORFEITED: (_,) * 16,
}


@pytest.mark.parametrize("state", list(OrderStatus))
@pytest.mark.parametrize("event", order_machine.EVENTS)
def test_every_order_state_and_event_moves_as_the_table_says(state, event):
    assert order_machine.next_status(state, event) == ORDER_TABLE[state][order_machine.EVENTS.index(event)]


def test_only_orders_that_end_without_being_bought_give_their_stock_back():
    assert order_machine.RELEASES_STOCK == {Od.REJECTED, Od.CANCELLED, Od.EXPIRED, Od.REFUNDED, Od.FORFEITED}
    assert order_machine.FINAL == {Od.RECEIVED, Od.REJECTED, Od.CANCELLED, Od.EXPIRED, Od.REFUNDED, Od.FORFEITED}


@pytest.mark.parametrize("event", order_machine.EVENTS)
def test_manual_orders_never_take_escrow_events_and_otomatis_orders_never_take_proofs(event):
    assert order_machine.applies(event, "manual") == (
        event not in ("pay", "receive", "refund", "complain", "settle_release", "settle_refund", "pay_dp", "forfeit"))
    assert order_machine.applies(event, "otomatis") == (event not in ("proof", "proof_rejected", "confirm"))


@given(st.integers(min_value=0, max_value=10**11), st.integers(min_value=0, max_value=10_000))
def test_a_released_escrow_splits_into_fee_and_earnings_without_losing_a_rupiah(amount, fee_bps):
    fee, rest = order_machine.release_split(amount, fee_bps)
    assert fee + rest == amount and 0 <= fee <= amount and fee == amount * fee_bps // 10_000


# --- broadcasts --------------------------------------------------------------------------------------------

B = BroadcastStatus
BROADCAST_TABLE = {
    #           confirm     cancel        finish   expire
    B.PREVIEW: (B.RUNNING, B.CANCELLED, _, _),
    B.RUNNING: (_, _, B.DONE, B.DONE),
    B.DONE: (_, _, _, _),
    B.CANCELLED: (_, _, _, _),
}
DELIVERY_TABLE = {
    #              sent       failed       pending (not final yet)
    "pending": ("charged", "released", _),
    "charged": (_, "refunded", _),
    "released": (_, _, _),
    "refunded": (_, _, _),
}


@pytest.mark.parametrize("state", list(BroadcastStatus))
@pytest.mark.parametrize("event", broadcast_machine.BROADCAST_EVENTS)
def test_every_broadcast_state_and_event_moves_as_the_table_says(state, event):
    expected = BROADCAST_TABLE[state][broadcast_machine.BROADCAST_EVENTS.index(event)]
    assert broadcast_machine.next_status(state, event) == expected


@pytest.mark.parametrize("settled", broadcast_machine.SETTLED)
@pytest.mark.parametrize("outbox", ["sent", "failed", "pending"])
def test_every_delivery_state_and_outbox_outcome_settles_as_the_table_says(settled, outbox):
    expected = DELIVERY_TABLE[settled][("sent", "failed", "pending").index(outbox)]
    assert broadcast_machine.settle_delivery(settled, outbox) == expected


@given(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(0, 10**9))
def test_a_hold_is_split_without_losing_or_inventing_a_rupiah(held, charged, from_earnings):
    split = broadcast_machine.split_hold(held, charged, from_earnings)
    assert split.post + split.to_earnings + split.to_wallet == held
    assert min(split.post, split.to_earnings, split.to_wallet) >= 0
    assert split.post <= charged and split.to_earnings <= from_earnings
