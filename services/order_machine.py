"""The order state machine, pure: which event moves an order from which state, and what that move does.
services/orders.py asks it for the states an event applies to (the WHERE of its conditional UPDATE, so that two
taps move an order once) and for the effects of the move.

    state \\ event  proof      proof_rejected confirm   reject   ship    cancel    expire  pay       receive  refund
    pending        proof_sub. -              confirmed rejected -       cancelled expired confirmed -        -
    proof_sub.     proof_sub. pending        confirmed rejected -       -         -       -         -        -
    confirmed      -          -              -         -        shipped -         -       -         -        refunded
    shipped        -          -              -         -        -       -         -       -         received -
    (proof_sub. = proof_submitted)
    confirmed, shipped --complain--> disputed (the escrow is frozen: no receipt, auto-release or refund by
    either side); disputed --settle_release--> received (an admin releases it, or part of it after refunding
    the rest); disputed --settle_refund--> refunded (an admin refunds it all)
    pending, proof_sub. --trip_cancel--> cancelled (BATALKAN: the jastiper cancels the whole trip)
    Down payments: pending --pay_dp--> dp_paid --pay--> confirmed (the rest, after TIBA); dp_paid --refund-->
    refunded (rejected, cancelled, or the rest never paid on a "kembali" trip); dp_paid --forfeit--> forfeited
    (the rest never paid on a "hangus" trip: the DP is released to the jastiper like a delivered order)
    rejected, cancelled, expired, received, refunded: final (nothing moves them)

Manual trips use proof / confirm (the jastiper checks a transfer by eye); otomatis trips use pay (money arrived in
the order's escrow: it is *lunas*), receive (the escrow is released to the jastiper) and refund (it goes back to
the buyer) — services/orders.py refuses the other kind's events. A manual order's `shipped` is where it ends.

Effects: rejected, cancelled, expired and refunded give the stock back; every move but "proof" (the jastiper is
told instead) and "cancel" (the buyer did it) tells the buyer. Money: `release_split` below.
"""

from __future__ import annotations

from typing import Literal

from services.kinds import OrderStatus

OrderEvent = Literal["proof", "proof_rejected", "confirm", "reject", "ship", "cancel", "expire", "pay", "receive",
                     "refund", "complain", "settle_release", "settle_refund", "trip_cancel", "pay_dp", "forfeit"]
EVENTS: tuple[OrderEvent, ...] = ("proof", "proof_rejected", "confirm", "reject", "ship", "cancel", "expire", "pay",
                                  "receive", "refund", "complain", "settle_release", "settle_refund", "trip_cancel",
                                  "pay_dp", "forfeit")
MANUAL_ONLY = frozenset({"proof", "proof_rejected", "confirm"})
ESCROW_ONLY = frozenset({"pay", "receive", "refund", "complain", "settle_release", "settle_refund", "pay_dp",
                         "forfeit"})

P, S, C = OrderStatus.PENDING, OrderStatus.PROOF_SUBMITTED, OrderStatus.CONFIRMED
TRANSITIONS: dict[tuple[OrderStatus, OrderEvent], OrderStatus] = {
    (P, "proof"): S, (S, "proof"): S,
    (S, "proof_rejected"): P,
    (P, "confirm"): C, (S, "confirm"): C,
    (P, "reject"): OrderStatus.REJECTED, (S, "reject"): OrderStatus.REJECTED,
    (C, "ship"): OrderStatus.SHIPPED,
    (P, "cancel"): OrderStatus.CANCELLED,
    (P, "expire"): OrderStatus.EXPIRED,
    (P, "pay"): C,
    (OrderStatus.SHIPPED, "receive"): OrderStatus.RECEIVED,
    (C, "refund"): OrderStatus.REFUNDED,
    (C, "complain"): OrderStatus.DISPUTED, (OrderStatus.SHIPPED, "complain"): OrderStatus.DISPUTED,
    (OrderStatus.DISPUTED, "settle_release"): OrderStatus.RECEIVED,
    (OrderStatus.DISPUTED, "settle_refund"): OrderStatus.REFUNDED,
    (P, "trip_cancel"): OrderStatus.CANCELLED, (S, "trip_cancel"): OrderStatus.CANCELLED,
    (P, "pay_dp"): OrderStatus.DP_PAID, (OrderStatus.DP_PAID, "pay"): C,
    (OrderStatus.DP_PAID, "refund"): OrderStatus.REFUNDED, (OrderStatus.DP_PAID, "forfeit"): OrderStatus.FORFEITED,
}
RELEASES_STOCK = frozenset({OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.EXPIRED, OrderStatus.REFUNDED,
                            OrderStatus.FORFEITED})
FINAL = frozenset(set(OrderStatus) - {state for state, _ in TRANSITIONS})


def next_status(state: OrderStatus, event: OrderEvent) -> OrderStatus | None:
    """Where `event` takes an order in `state`; None when it does not apply."""
    return TRANSITIONS.get((state, event))


def sources(event: OrderEvent) -> tuple[str, ...]:
    """The states `event` applies to, as stored: the condition of the UPDATE that makes the move."""
    return tuple(state.value for (state, e) in TRANSITIONS if e == event)


def target(event: OrderEvent) -> str:
    """The one state `event` leads to (every order event has one)."""
    (to,) = {to for (_, e), to in TRANSITIONS.items() if e == event}
    return to.value


def applies(event: OrderEvent, payment_mode: str) -> bool:
    """Whether `event` exists for an order of this payment mode (copied from its trip when it was placed)."""
    if payment_mode == "otomatis":
        return event not in MANUAL_ONLY
    return event not in ESCROW_ONLY


def release_split(amount: int, fee_bps: int) -> tuple[int, int]:
    """(fee to revenue, rest to the jastiper's earnings) of an escrow released: the fee is computed once, on the
    released amount, rounded down, so the two always add up to `amount`."""
    fee = amount * fee_bps // 10_000
    return fee, amount - fee
