"""The words of the domain as types: channels, states and kinds, each a StrEnum so that a typo is an error and
the database's CHECK lists come from the same place as the code's comparisons."""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    TELEGRAM = "telegram"
    WHATSAPP = "whatsapp"
    PLAYGROUND = "playground"
    WEBHOOK = "webhook"  # a client bot's server: deposit events forwarded to its callback URL


class PaymentStatus(StrEnum):
    CREATED = "created"
    PENDING = "pending"
    PAID = "paid"
    FAILED = "failed"
    EXPIRED = "expired"
    HELD = "held"  # the gateway reported another amount: the money waits in suspense for an admin
    REFUSED = "refused"  # an admin refused a held payment: its money waits in suspense to go back
    REVERSED = "reversed"
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"


class PaymentPurpose(StrEnum):
    TOPUP = "topup"
    ORDER = "order"
    DEPOSIT = "deposit"


class DepositFormat(StrEnum):
    API = "api"  # created through /api/v1: forwarded as Standard Webhooks
    WORKER = "worker"  # created through the Worker's /deposit/create: forwarded in the Worker's format


class AccountKind(StrEnum):
    # credit-normal: balance = credits - debits
    WALLET = "wallet"  # per user: top-ups and refunds; spendable, not withdrawable
    EARNINGS = "earnings"  # per user: escrow releases; spendable and withdrawable
    ESCROW = "escrow"  # per order
    HOLD = "hold"  # per broadcast or payout: reserved money
    CLIENT = "client"  # per client bot: deposits owed to it
    REVENUE = "revenue"
    SUSPENSE = "suspense"  # received but not assigned: held payments, disputed refunds
    # debit-normal: balance = debits - credits
    GATEWAY = "gateway"  # per gateway: what it owes us
    PROVIDER = "provider"  # per payout provider: our money sent out through it
    RECEIVABLE = "receivable"  # per user or client bot: owed to us after a reversal found the money spent
    FEES = "fees"
    ADJUSTMENT = "adjustment"


CREDIT_NORMAL = frozenset({AccountKind.WALLET, AccountKind.EARNINGS, AccountKind.ESCROW, AccountKind.HOLD,
                           AccountKind.CLIENT, AccountKind.REVENUE, AccountKind.SUSPENSE})
# Accounts that may go either way or only grow: never locked or updated row by row per transfer (every writer
# would serialise on "the Midtrans account"); their balances are derived from the transfers. `provider` is one
# since migration 0010: hold -> provider (a completed payout) takes it below zero in its debit-normal sign, as
# gateway -> wallet (a top-up) takes the gateway above it.
DERIVED = frozenset({AccountKind.GATEWAY, AccountKind.REVENUE, AccountKind.FEES, AccountKind.ADJUSTMENT,
                     AccountKind.PROVIDER})


class HoldStatus(StrEnum):
    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"


class OrderStatus(StrEnum):
    PENDING = "pending"
    PROOF_SUBMITTED = "proof_submitted"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    SHIPPED = "shipped"
    CANCELLED = "cancelled"
    EXPIRED = "expired"
    RECEIVED = "received"  # otomatis: the buyer got it (or the auto-release came); the escrow went to the jastiper
    REFUNDED = "refunded"  # otomatis: a paid order rejected or cancelled; the escrow went back to the buyer
    DISPUTED = "disputed"  # otomatis: the buyer complained before release; the escrow is frozen for an admin
    DP_PAID = "dp_paid"  # otomatis with a down payment: the DP is in escrow, the rest is due after TIBA
    FORFEITED = "forfeited"  # a DP whose rest was never paid, released to the jastiper (the trip said "hangus")


class PayoutStatus(StrEnum):
    AWAITING_APPROVAL = "awaiting_approval"  # above payouts.approval_above today: an admin decides first
    REQUESTED = "requested"  # the hold is in place; the next attempt is to be sent
    SENDING = "sending"  # an attempt is committed as started; its outcome is not known yet
    PROCESSING = "processing"  # the provider accepted it; its callback or status API will say how it ended
    WAITING_FUNDS = "waiting_funds"  # the provider's own balance ran out: a new attempt once it is topped up
    COMPLETED = "completed"
    FAILED = "failed"
    REJECTED = "rejected"  # by an admin
    CANCELLED = "cancelled"
    UNKNOWN = "unknown"  # the provider may or may not have sent it: an admin checks its dashboard
    REVERSED = "reversed"  # completed, then bounced back by the bank


class BroadcastStatus(StrEnum):
    PREVIEW = "preview"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"


def sql_in(values: type[StrEnum]) -> str:
    """A CHECK constraint's list: "'a','b','c'"."""
    return ",".join(f"'{v.value}'" for v in values)
