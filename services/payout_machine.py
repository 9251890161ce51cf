"""The payout state machine, pure: which event moves a payout from which state to which, and what each target
means for the money held. The service (services/withdrawals.py) loads and locks, asks `step`, and writes the
move as a conditional UPDATE … WHERE status IN (sources), so a late or repeated callback is a no-op.

    awaiting_approval --approve--> requested           --reject--> rejected (hold voided)
    requested      --send--> sending                   (committed before the provider is called)
    sending        --accepted--> processing            --completed--> completed (hold posted)
                   --failed--> failed (hold voided)    --no_funds--> waiting_funds (hold kept)
                   --unknown--> unknown (an admin checks the provider's dashboard)
    processing     --completed / failed / no_funds / unknown / cancelled--> as above
    waiting_funds  --retry--> requested                (a new attempt: the previous one definitely failed)
    unknown        --completed / failed--> (an admin, or the provider's status API)
    completed      --reversed--> reversed              (the bank bounced it: the money comes back to earnings)

Money goes back to earnings only on a definite refusal (failed, rejected, cancelled) or a reversal.
"""

from __future__ import annotations

from enum import StrEnum

from services.kinds import PayoutStatus as S


class PayoutEvent(StrEnum):
    APPROVE = "approve"
    REJECT = "reject"
    SEND = "send"
    ACCEPTED = "accepted"
    COMPLETED = "completed"
    FAILED = "failed"
    NO_FUNDS = "no_funds"
    UNKNOWN = "unknown"
    CANCELLED = "cancelled"
    RETRY = "retry"
    REVERSED = "reversed"


IN_FLIGHT = (S.SENDING, S.PROCESSING, S.UNKNOWN)
TABLE: dict[PayoutEvent, tuple[tuple[S, ...], S]] = {
    PayoutEvent.APPROVE: ((S.AWAITING_APPROVAL,), S.REQUESTED),
    PayoutEvent.REJECT: ((S.AWAITING_APPROVAL,), S.REJECTED),
    PayoutEvent.SEND: ((S.REQUESTED,), S.SENDING),
    PayoutEvent.ACCEPTED: ((S.SENDING,), S.PROCESSING),
    PayoutEvent.COMPLETED: (IN_FLIGHT, S.COMPLETED),
    PayoutEvent.FAILED: (IN_FLIGHT, S.FAILED),
    PayoutEvent.NO_FUNDS: ((S.SENDING, S.PROCESSING), S.WAITING_FUNDS),
    PayoutEvent.UNKNOWN: ((S.SENDING, S.PROCESSING), S.UNKNOWN),
    PayoutEvent.CANCELLED: (IN_FLIGHT, S.CANCELLED),
    PayoutEvent.RETRY: ((S.WAITING_FUNDS,), S.REQUESTED),
    PayoutEvent.REVERSED: ((S.COMPLETED,), S.REVERSED),
}
# What each target does to the hold (amount + fee, reserved from earnings when the payout was requested).
POSTS_HOLD = frozenset({S.COMPLETED})
VOIDS_HOLD = frozenset({S.FAILED, S.REJECTED, S.CANCELLED})
FINAL = frozenset({S.COMPLETED, S.FAILED, S.REJECTED, S.CANCELLED, S.REVERSED})
# Shown to admins (ADMIN PENARIKAN, the dashboard): a person has to act or watch.
NEEDS_ADMIN = (S.AWAITING_APPROVAL, S.UNKNOWN, S.WAITING_FUNDS)


def sources(event: PayoutEvent) -> tuple[S, ...]:
    return TABLE[event][0]


def step(status: str, event: PayoutEvent) -> S | None:
    """The state `event` moves a payout in `status` to, or None when it does not apply (a no-op)."""
    allowed, target = TABLE[event]
    return target if status in allowed else None
