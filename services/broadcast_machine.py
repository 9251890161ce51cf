"""The broadcast state machines, pure: the broadcast itself, each recipient's delivery, and how its hold is
resolved. services/broadcasts.py loads, locks and writes; the decisions are here.

    broadcast \\ event   confirm    cancel      finish (nothing pending)   expire (48 h running)
    preview             running    cancelled   -                          -
    running             -          -           done (hold posted)         done (hold expired)
    done, cancelled: final

    delivery \\ outbox   sent       failed
    pending             charged    released
    charged             -          refunded (a late failure: its price comes back from revenue if already posted)
    released, refunded: final

    hold: pending -> posted | expired, once (a conditional update on the hold account's status); resolving posts
    what was charged to revenue and gives the rest back, to earnings first up to what came from there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from services.kinds import BroadcastStatus

BroadcastEvent = Literal["confirm", "cancel", "finish", "expire"]
BROADCAST_EVENTS: tuple[BroadcastEvent, ...] = ("confirm", "cancel", "finish", "expire")
TRANSITIONS: dict[tuple[BroadcastStatus, BroadcastEvent], BroadcastStatus] = {
    (BroadcastStatus.PREVIEW, "confirm"): BroadcastStatus.RUNNING,
    (BroadcastStatus.PREVIEW, "cancel"): BroadcastStatus.CANCELLED,
    (BroadcastStatus.RUNNING, "finish"): BroadcastStatus.DONE,
    (BroadcastStatus.RUNNING, "expire"): BroadcastStatus.DONE,
}

Settled = Literal["pending", "charged", "released", "refunded"]
SETTLED: tuple[Settled, ...] = ("pending", "charged", "released", "refunded")
DELIVERIES: dict[tuple[Settled, str], Settled] = {
    ("pending", "sent"): "charged",
    ("pending", "failed"): "released",
    ("charged", "failed"): "refunded",
}


def next_status(state: BroadcastStatus, event: BroadcastEvent) -> BroadcastStatus | None:
    return TRANSITIONS.get((state, event))


def sources(event: BroadcastEvent) -> tuple[str, ...]:
    """The states `event` applies to, as stored: the condition of the UPDATE that makes the move."""
    return tuple(state.value for (state, e) in TRANSITIONS if e == event)


def settle_delivery(settled: Settled, outbox_status: str) -> Settled | None:
    """A recipient's delivery after its message reached `outbox_status`; None when nothing changes."""
    return DELIVERIES.get((settled, outbox_status))


@dataclass(frozen=True)
class HoldSplit:
    post: int  # to revenue
    to_earnings: int
    to_wallet: int


def split_hold(held: int, charged: int, from_earnings: int) -> HoldSplit:
    """Resolve a hold of `held`: post what was charged (never more than is held), give the rest back — to
    earnings first up to what came from there, so a refund never turns top-up money into withdrawable money."""
    post = max(0, min(charged, held))
    rest = held - post
    to_earnings = max(0, min(rest, from_earnings))
    return HoldSplit(post, to_earnings, rest - to_earnings)
