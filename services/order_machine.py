"""The order state machine, pure: which event moves an order from which state, and what that move does.
services/orders.py asks it for the states an event applies to (the WHERE of its conditional UPDATE, so that two
taps move an order once) and for the effects of the move.

    state \\ event    proof            proof_rejected  confirm     reject     ship      cancel     expire
    pending          proof_submitted  -               confirmed   rejected   -         cancelled  expired
    proof_submitted  proof_submitted  pending         confirmed   rejected   -         -          -
    confirmed        -                -               -           -          shipped   -          -
    shipped, rejected, cancelled, expired: final (nothing moves them)

Effects: rejected, cancelled and expired give the stock back; every move but "proof" (the jastiper is told
instead) and "cancel" (the buyer did it) tells the buyer.
"""

from __future__ import annotations

from typing import Literal

from services.kinds import OrderStatus

OrderEvent = Literal["proof", "proof_rejected", "confirm", "reject", "ship", "cancel", "expire"]
EVENTS: tuple[OrderEvent, ...] = ("proof", "proof_rejected", "confirm", "reject", "ship", "cancel", "expire")

P, S, C = OrderStatus.PENDING, OrderStatus.PROOF_SUBMITTED, OrderStatus.CONFIRMED
TRANSITIONS: dict[tuple[OrderStatus, OrderEvent], OrderStatus] = {
    (P, "proof"): S, (S, "proof"): S,
    (S, "proof_rejected"): P,
    (P, "confirm"): C, (S, "confirm"): C,
    (P, "reject"): OrderStatus.REJECTED, (S, "reject"): OrderStatus.REJECTED,
    (C, "ship"): OrderStatus.SHIPPED,
    (P, "cancel"): OrderStatus.CANCELLED,
    (P, "expire"): OrderStatus.EXPIRED,
}
RELEASES_STOCK = frozenset({OrderStatus.REJECTED, OrderStatus.CANCELLED, OrderStatus.EXPIRED})
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
