"""The payment state machine, pure: (payment, event, the payer's funds) -> (payment, transfers, notices).
No I/O: services/settlement.py loads, locks, calls it and writes what it returns.

    state \\ event       pending   paid = amount   paid ≠ amount   failed/expired   deny after paid   refund
    created            pending   paid: credit    held: suspense  failed/expired   -                 credit, then back†
    pending            -         paid: credit    held: suspense  failed/expired   -                 credit, then back†
    failed, expired    -         paid: credit    held: suspense  -                -                 credit, then back†
    paid               -         -               -               -                reversed: back    refunded*: back
    partially_refunded -         -               -               -                -                 refunded*: back
    held, refused      -         -               -               -                -                 refunded*: suspense
    reversed, refunded -         -               -               -                -                 -
    (* partially_refunded until the whole amount is back; † a refund proves a payment whose own notification is
    late: it is settled first, so a refund overtaking its settlement ends where the ordered pair does)

    admin events        held                          refused                       any other state
    admin_credit        paid: suspense -> account     -                             -
    admin_refuse        refused (money stays)         -                             -
    admin_refunded_out  refunded: suspense -> gateway refunded: suspense -> gateway -

"credit"  gateway -> the payment's account (a top-up: the wallet; a deposit: its client bot's account), then that
          account repays what its owner owes (receivable) first; a fee the gateway reports: fees -> gateway.
"back"    money the gateway took back (a reversal, or the new part of a refund: refunds are cumulative): what the
          wallet (a deposit: the client's account) holds goes back to the gateway, the rest is owed:
          receivable -> gateway, and admins are told.
A late failure after success changes nothing (only a documented reversal, Midtrans deny after settlement, does).
Every transition is keyed so that a repeat produces the same references: posting them again is a no-op.

A deposit (purpose "deposit") moves its money the same way; instead of a chat notice to a payer it yields the
event forwarded to its client bot (DEPOSIT_EVENTS: deposit.paid, .failed, .expired, .reversed), and a reversal
always tells admins (the client bot has credited its user already).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from services import ledger
from services.kinds import AccountKind, PaymentPurpose, PaymentStatus

UNPAID = (PaymentStatus.CREATED, PaymentStatus.PENDING, PaymentStatus.FAILED, PaymentStatus.EXPIRED)
MONEY_BACK = (PaymentStatus.PAID, PaymentStatus.PARTIALLY_REFUNDED)

EventKind = Literal["pending", "hold", "paid", "failed", "expired", "refunded", "ignored", "admin_credit",
                    "admin_refuse", "admin_refunded_outside"]
ADMIN_EVENTS = ("admin_credit", "admin_refuse", "admin_refunded_outside")
IN_SUSPENSE = (PaymentStatus.HELD, PaymentStatus.REFUSED)  # the money the payer sent waits for an admin
# A deposit's payer is another bot's user: what would be their chat notice is the event forwarded to that bot.
DEPOSIT_EVENTS = {"payment_credited": "deposit.paid", "payment_credited_repaid": "deposit.paid",
                  "payment_held_credited": "deposit.paid", "payment_failed": "deposit.failed",
                  "payment_expired": "deposit.expired", "payment_reversed": "deposit.reversed",
                  "payment_refunded": "deposit.reversed", "payment_held_refused": "deposit.failed",
                  "payment_held_refunded": "deposit.failed"}
# Accounts whose balance a reversal takes back first: the money is still there unless it was spent.
_TAKES_BACK = (AccountKind.WALLET, AccountKind.CLIENT)


@dataclass(frozen=True)
class PaymentState:
    id: int
    order_id: str
    user_id: int | None  # None for a deposit: a client bot's, not a Titip user's
    gateway: str
    amount: int
    status: PaymentStatus
    account: ledger.Ref  # where the money goes when paid
    purpose: PaymentPurpose = PaymentPurpose.TOPUP
    receivable: ledger.Ref | None = None  # what the account's owner owes us (default: the payer's receivable)
    paid_amount: int | None = None
    refunded_amount: int = 0
    credited: bool = False
    gateway_ref: str | None = None
    flag_reason: str | None = None
    method: str | None = None


@dataclass(frozen=True)
class Event:
    status: EventKind
    raw_status: str = ""
    amount: int | None = None  # what the gateway says was paid
    refund_amount: int | None = None  # this refund
    refunded_total: int | None = None  # all refunds so far, when the gateway says so
    reverses_success: bool = False
    gateway_ref: str | None = None
    method: str | None = None
    fee: int | None = None


@dataclass(frozen=True)
class Funds:
    """The money the machine may need: the balance of the payment's account (a payer's wallet, a client bot's
    account) and what its owner owes."""

    wallet: int = 0
    receivable: int = 0


@dataclass(frozen=True)
class Notice:
    template: str
    key: str  # the dedupe key's stem; the payment id is appended
    params: dict[str, object] = field(default_factory=dict)
    admins: bool = False  # to every admin, not to the payer
    forward: bool = False  # a deposit's event for its client bot's server (template: the event type)


@dataclass(frozen=True)
class Step:
    state: PaymentState
    moves: tuple[ledger.Move, ...] = ()
    notices: tuple[Notice, ...] = ()
    outcome: str = "no_change"


def _base(p: PaymentState) -> int:
    """The money the payment brought: what the gateway reported when it did, else the bill."""
    return p.paid_amount if p.paid_amount is not None else p.amount


def owed_by(p: PaymentState) -> ledger.Ref:
    """The receivable of whoever the payment's money belongs to: the payer, or a deposit's client bot."""
    if p.receivable is not None:
        return p.receivable
    assert p.user_id is not None, "a payment without a user names its receivable"
    return ledger.receivable(p.user_id)


def funds_after(p: PaymentState, funds: Funds, moves: tuple[ledger.Move, ...]) -> Funds:
    """`funds` once `moves` are posted."""
    wallet, owed = funds.wallet, funds.receivable
    debt = owed_by(p)
    for move in moves:
        for ref, side in ((move.debit, "debit"), (move.credit, "credit")):
            if ref == p.account:
                wallet += ledger.natural_delta(ref.kind, side, move.amount)
            elif ref == debt:
                owed += ledger.natural_delta(ref.kind, side, move.amount)
    return Funds(wallet, owed)


def transition(p: PaymentState, e: Event, funds: Funds) -> Step:
    """What `e` does to `p`; see the table in the module docstring."""
    step = _transition(p, e, funds)
    if p.purpose is not PaymentPurpose.DEPOSIT or not step.notices:
        return step
    notices = []
    for notice in step.notices:
        if notice.admins:
            notices.append(notice)
        elif notice.template in DEPOSIT_EVENTS:
            event = DEPOSIT_EVENTS[notice.template]
            notices.append(Notice(event, event.removeprefix("deposit."), dict(notice.params), forward=True))
    return replace(step, notices=tuple(notices))


def _transition(p: PaymentState, e: Event, funds: Funds) -> Step:
    if e.status == "paid":
        return _paid(p, e, funds)
    if e.status in ("pending", "hold"):
        if p.status is PaymentStatus.CREATED:
            return Step(replace(p, status=PaymentStatus.PENDING), outcome="pending")
        return Step(p)
    if e.status in ("failed", "expired"):
        if p.status is PaymentStatus.PAID and e.status == "failed" and e.reverses_success:
            return _money_back(p, e, funds, _base(p) - p.refunded_amount, PaymentStatus.REVERSED, "reversal")
        if p.status in (PaymentStatus.CREATED, PaymentStatus.PENDING):
            status = PaymentStatus(e.status)
            return Step(replace(p, status=status),
                        notices=(Notice(f"payment_{e.status}", e.status, {"order_id": p.order_id,
                                                                          "amount": p.amount}),),
                        outcome=e.status)
        return Step(p)
    if e.status == "refunded":
        return _refund(p, e, funds)
    if e.status == "admin_credit":
        return _admin_credit(p, funds)
    if e.status == "admin_refuse":
        if p.status is not PaymentStatus.HELD:
            return Step(p)
        return Step(replace(p, status=PaymentStatus.REFUSED), (),
                    (Notice("payment_held_refused", "held-refused", {"order_id": p.order_id,
                                                                     "amount": _base(p)}),), "refused")
    if e.status == "admin_refunded_outside":
        if p.status not in IN_SUSPENSE or p.paid_amount is None:
            return Step(p)
        left = p.paid_amount - p.refunded_amount  # a gateway's partial refund may have come first
        move = ledger.Move(f"refund-held:{p.id}", ledger.SUSPENSE, ledger.gateway(p.gateway), left, "refund", p.id)
        return Step(replace(p, status=PaymentStatus.REFUNDED, refunded_amount=p.paid_amount), (move,),
                    (Notice("payment_held_refunded", "held-refunded", {"order_id": p.order_id, "amount": left}),),
                    "refunded")
    return Step(p)


def _paid(p: PaymentState, e: Event, funds: Funds) -> Step:
    if p.credited or p.status not in (*UNPAID, PaymentStatus.PAID):
        return Step(p)
    paid = e.amount if e.amount is not None else p.amount
    ref = e.gateway_ref or p.gateway_ref
    method = e.method or p.method
    if paid != p.amount:
        if p.status not in UNPAID:
            return Step(p)
        reason = f"amount mismatch: gateway says {paid}, we asked {p.amount}"
        move = ledger.Move(f"held:{p.id}", ledger.gateway(p.gateway), ledger.SUSPENSE, paid, "held", p.id)
        state = replace(p, status=PaymentStatus.HELD, paid_amount=paid, flag_reason=reason, gateway_ref=ref,
                        method=method)
        return Step(state, (move,), (Notice("payment_held", "held", {"order_id": p.order_id, "amount": p.amount}),
                                     Notice("admin_payment_held", "held", {"order_id": p.order_id,
                                                                           "amount": p.amount, "paid": paid},
                                            admins=True)), "held")
    what = "deposit" if p.purpose is PaymentPurpose.DEPOSIT else "topup"
    moves = [ledger.Move(f"{what}:{p.id}", ledger.gateway(p.gateway), p.account, p.amount, what, p.id)]
    if e.fee:
        moves.append(ledger.Move(f"fee:{p.id}", ledger.FEES, ledger.gateway(p.gateway), e.fee, "fee", p.id))
    moves += _repay(p, funds, p.amount)
    state = replace(p, status=PaymentStatus.PAID, paid_amount=paid, credited=True, gateway_ref=ref, method=method)
    after = funds_after(p, funds, tuple(moves))
    repaid = funds.receivable - after.receivable
    params: dict[str, object] = {"order_id": p.order_id, "amount": p.amount, "balance": after.wallet}
    notices = [Notice("payment_credited" if not repaid else "payment_credited_repaid", "credited",
                      {**params, **({"repaid": repaid} if repaid else {})})]
    return Step(state, tuple(moves), tuple(notices), "credited")


def _repay(p: PaymentState, funds: Funds, arrived: int) -> list[ledger.Move]:
    """Money arriving in a top-up's wallet (a deposit's client account) repays what its owner owes first; an
    order's money, in transit to its escrow, never does."""
    if funds.receivable <= 0:
        return []
    topup = p.purpose is PaymentPurpose.TOPUP and p.user_id is not None and p.account == ledger.wallet(p.user_id)
    deposit = p.purpose is PaymentPurpose.DEPOSIT and p.account.kind is AccountKind.CLIENT
    if not (topup or deposit):
        return []
    due = min(arrived, funds.receivable)
    return [ledger.Move(f"repay:{p.id}", p.account, owed_by(p), due, "repay", p.id)]


def _refund(p: PaymentState, e: Event, funds: Funds) -> Step:
    if p.status in UNPAID and e.amount is not None:
        # A refund says the payment was made: its settlement notification is late or lost. Settle it first,
        # so that the order notifications arrive in never changes where the money ends.
        first = _paid(p, replace(e, status="paid"), funds)
        if first.outcome not in ("credited", "held"):
            return Step(p)
        then = _refund(first.state, e, funds_after(p, funds, first.moves))
        return Step(then.state, first.moves + then.moves, first.notices + then.notices,
                    then.outcome if then.outcome != "no_change" else first.outcome)
    if p.status not in (*MONEY_BACK, *IN_SUSPENSE):
        return Step(p)
    base = _base(p)
    left = base - p.refunded_amount
    if e.refunded_total is not None:
        new = min(e.refunded_total, base) - p.refunded_amount
    else:
        new = min(e.refund_amount or left, left)
    if new <= 0:
        return Step(p)
    total = p.refunded_amount + new
    status = PaymentStatus.REFUNDED if total >= base else PaymentStatus.PARTIALLY_REFUNDED
    if p.status in IN_SUSPENSE:  # the money never reached the payer: it leaves suspense
        move = ledger.Move(f"refund:{p.id}:{total}", ledger.SUSPENSE, ledger.gateway(p.gateway), new, "refund",
                           p.id)
        # Part of it back: the rest still waits in suspense for an admin, so the payment stays where it was.
        status = PaymentStatus.REFUNDED if total >= base else p.status
        return Step(replace(p, status=status, refunded_amount=total), (move,),
                    (Notice("payment_held_refunded", f"held-refunded-{total}", {"order_id": p.order_id,
                                                                                 "amount": new}),), "refunded")
    return _money_back(p, e, funds, new, status, "refund", total)


def _money_back(p: PaymentState, e: Event, funds: Funds, back: int, status: PaymentStatus, kind: str,
                total: int | None = None) -> Step:
    total = total if total is not None else p.refunded_amount + back
    mark = f"{p.id}" if kind == "reversal" else f"{p.id}:{total}"
    from_wallet = min(back, max(0, funds.wallet)) if p.account.kind in _TAKES_BACK else 0
    moves = []
    if from_wallet:
        moves.append(ledger.Move(f"{kind}:{mark}", p.account, ledger.gateway(p.gateway), from_wallet, kind, p.id))
    owed = back - from_wallet
    if owed:
        moves.append(ledger.Move(f"owed:{mark}", owed_by(p), ledger.gateway(p.gateway), owed, "owed", p.id))
    after = funds_after(p, funds, tuple(moves))
    template = "payment_reversed" if kind == "reversal" else "payment_refunded"
    notices = [Notice(template, f"{kind}-{total}", {"order_id": p.order_id, "amount": from_wallet,
                                                     "balance": after.wallet})]
    reason = None
    if owed:
        reason = f"{status.value}: could take only {from_wallet} of {back} back; {owed} is owed (receivable)"
        notices.append(Notice("admin_payment_owed", f"owed-{total}", {"order_id": p.order_id, "amount": back,
                                                                       "taken": from_wallet, "owed": owed},
                              admins=True))
    elif p.purpose is PaymentPurpose.DEPOSIT:
        # The client bot has credited its user already: whether or not its account covered it, admins must know.
        notices.append(Notice("admin_deposit_reversed", f"deposit-back-{total}",
                              {"order_id": p.order_id, "amount": back}, admins=True))
    state = replace(p, status=status, refunded_amount=total, flag_reason=reason or p.flag_reason)
    outcome = "reversed" if kind == "reversal" else "refunded"
    return Step(state, tuple(moves), tuple(notices), outcome)


def _admin_credit(p: PaymentState, funds: Funds) -> Step:
    if p.status is not PaymentStatus.HELD or p.paid_amount is None or p.credited:
        return Step(p)
    left = p.paid_amount - p.refunded_amount  # what a gateway's partial refund left in suspense
    moves = [ledger.Move(f"release-held:{p.id}", ledger.SUSPENSE, p.account, left, "held-credit", p.id)]
    moves += _repay(p, funds, left)
    after = funds_after(p, funds, tuple(moves))
    state = replace(p, status=PaymentStatus.PAID, credited=True)
    return Step(state, tuple(moves), (Notice("payment_held_credited", "held-credited",
                                             {"order_id": p.order_id, "amount": left,
                                              "balance": after.wallet}),), "credited")
