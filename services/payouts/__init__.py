"""The `PayoutProvider` port (disbursement APIs) and the plain values that cross it. One adapter module per
provider, like services/payments/ for gateways.

An adapter answers in one of three ways, and the difference is what keeps a payout at most once:
- a `PayoutReport` with a definite outcome (accepted, completed, failed, no_funds, cancelled, reversed);
- `GatewayUnavailable` when the outcome is not known (timeout, 5xx, a connection cut after sending): the
  attempt is never sent blind again; `status` (or an admin) decides;
- `status` answering None: the provider has no record of this attempt, so it was definitely never made.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import httpx

from services.payments import CallbackAnswer

Outcome = Literal["accepted", "completed", "failed", "no_funds", "cancelled", "reversed"]
Remember = Callable[[str, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class PayoutOrder:
    """One attempt of one payout, as the provider is asked to make it."""

    payout_id: int
    attempt: int
    amount: int
    bank: str  # our name (services/payouts/banks.py)
    number: str
    holder_name: str
    description: str = "Titip"
    provider_ref: str | None = None  # known from this attempt's earlier step (Duitku's disburseId)
    context: dict[str, Any] = field(default_factory=dict)  # what that step returned

    @property
    def key(self) -> str:
        """The attempt's idempotency key and reference at the provider: payout id + attempt number."""
        return f"titip-{self.payout_id}-{self.attempt}"


@dataclass(frozen=True)
class PayoutReport:
    """A provider's definite word about one attempt."""

    outcome: Outcome
    provider_ref: str | None = None
    key: str | None = None  # our reference, where the provider echoes it (Xendit reference_id)
    code: str | None = None  # the provider's failure code
    detail: str = ""
    event_key: str = ""  # unique per delivery of a state, for the log


def json_object(response: httpx.Response) -> dict[str, Any]:
    """A provider's answer as a JSON object; {} when it is not one (the caller decides what a missing field means)."""
    try:
        data = response.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def parse_key(key: str | None) -> tuple[int, int] | None:
    """'titip-12-2' -> (payout 12, attempt 2)."""
    if not key or not key.startswith("titip-"):
        return None
    parts = key.split("-")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    return int(parts[1]), int(parts[2])


class PayoutProvider(Protocol):
    name: str
    callback_answer: CallbackAnswer
    # An attempt whose outcome is unknown may be sent again as the same attempt once `status` says the provider
    # has no record of it (Xendit: the same Idempotency-key; Duitku: the same disburseId). Midtrans documents
    # no idempotency key: False, and such an attempt goes to an admin.
    resend_safe: bool
    # The provider documents that "failed" can follow "completed" when the bank sends the money back
    # (Midtrans: completed -> failed on SKN/RTGS/BI-FAST refunds): then it is a reversal.
    failure_after_success_reverses: bool
    # The callback's authenticity is less certain than the status API's answer (Duitku): a callback is applied
    # only as the status API confirms it.
    confirm_callbacks: bool

    async def validate(self, bank: str, number: str) -> str | None:
        """The account holder's name as the bank knows it, or None when this provider cannot look it up.
        Raises UserInputError("payout_account_invalid") when the provider says the account does not exist."""

    async def send(self, order: PayoutOrder, remember: Remember) -> PayoutReport:
        """Ask the provider to send the money; `remember(provider_ref, context)` is awaited (and committed)
        before the money call when an earlier step returns what a retry must reuse. GatewayUnavailable when the
        outcome is not known."""

    async def status(self, order: PayoutOrder) -> PayoutReport | None:
        """The attempt's state at the provider; None when the provider has no record of it (never made)."""

    def parse_callback(self, raw_body: bytes, headers: Mapping[str, str]) -> PayoutReport | None:
        """Verify, then parse; BadSignature or MalformedCallback; None for a genuine notice about something else
        (Midtrans' balance top-up notice)."""
