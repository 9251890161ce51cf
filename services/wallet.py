"""A person's money as they see it: the wallet (top-ups, refunds; spendable, not withdrawable) and earnings
(escrow releases; spendable and withdrawable), both accounts on the double-entry ledger (services/ledger.py),
and what moved them.

Spending draws on the wallet first, then earnings; what comes back goes first to where it was taken from
last, so a refund can never turn top-up money into withdrawable earnings.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from services import ledger
from services.clock import Clock
from services.errors import InsufficientFunds
from services.kinds import AccountKind
from storage.db import Database
from storage.models import Account, Payment, Transfer, User


@dataclass(frozen=True)
class UserView:
    id: int
    channel: str
    external_id: str
    language: str
    balance: int  # the wallet
    display_name: str | None = None
    username: str | None = None
    earnings: int = 0
    verified: bool = False


@dataclass(frozen=True)
class LedgerLine:
    amount: int  # signed, as the person sees it: + came in, - went out
    kind: str
    reference: str
    created_at: datetime
    subject: str = ""  # what it was for, as a person knows it: a payment's order code, "#7" for broadcast 7
    account: str = "wallet"  # wallet | earnings
    balance_after: int = 0  # that account's balance right after


def user_view(user: User, wallet: int = 0, earned: int = 0) -> UserView:
    return UserView(user.id, user.channel, user.external_id, user.language, wallet, user.display_name,
                    user.username, earned, user.verified_at is not None)


def spend(user_id: int, total: int, wallet_balance: int, earnings_balance: int, reference: str, to: ledger.Ref,
          kind: str) -> list[ledger.Move]:
    """Moves that pay `total` from the wallet first, then earnings; InsufficientFunds when both fall short."""
    if wallet_balance + earnings_balance < total:
        raise InsufficientFunds(balance=wallet_balance + earnings_balance, needed=total)
    from_wallet = min(total, wallet_balance)
    moves = [ledger.Move(f"{reference}:wallet", ledger.wallet(user_id), to, from_wallet, kind)]
    if total > from_wallet:
        moves.append(ledger.Move(f"{reference}:earnings", ledger.earnings(user_id), to, total - from_wallet, kind))
    return [m for m in moves if m.amount > 0]


class Wallet:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def balance(self, user_id: int) -> int:
        """The wallet's balance."""
        async with self._db.read() as session:
            return (await ledger.balances(session, [user_id]))[user_id][0]

    async def funds(self, user_id: int) -> tuple[int, int]:
        """(wallet, earnings)."""
        async with self._db.read() as session:
            return (await ledger.balances(session, [user_id]))[user_id]

    async def history(self, user_id: int, limit: int = 10) -> list[LedgerLine]:
        """The last transfers in or out of this person's wallet and earnings, newest first."""
        async with self._db.read() as session:
            mine = dict((await session.execute(select(Account.id, Account.kind).where(
                Account.user_id == user_id,
                Account.kind.in_((AccountKind.WALLET.value, AccountKind.EARNINGS.value))))).all())
            if not mine:
                return []
            rows = (await session.execute(
                select(Transfer, Payment.order_id).outerjoin(Payment, Payment.id == Transfer.payment_id)
                .where(or_(Transfer.debit_id.in_(list(mine)), Transfer.credit_id.in_(list(mine))))
                .order_by(Transfer.id.desc()).limit(limit))).all()
            wallet_now, earnings_now = (await ledger.balances(session, [user_id]))[user_id]
            running = {AccountKind.WALLET.value: wallet_now, AccountKind.EARNINGS.value: earnings_now}
            lines = []
            for transfer, order_id in rows:  # newest first: each line's balance, then step back before it
                incoming = transfer.credit_id in mine
                account = mine[transfer.credit_id if incoming else transfer.debit_id]
                amount = transfer.amount if incoming else -transfer.amount
                lines.append(LedgerLine(amount, transfer.kind, transfer.reference, transfer.created_at,
                                        order_id or _subject(transfer.reference), account, running[account]))
                running[account] -= amount
            return lines

    async def set_language(self, user_id: int, language: str) -> None:
        async with self._db.write() as session:
            await session.execute(update(User).where(User.id == user_id).values(language=language))

    async def adjust(self, user_id: int, amount: int, *, reference: str, to: AccountKind = AccountKind.WALLET) -> int:
        """Move `amount` (signed) between the adjustment account and the person's wallet (or earnings), once per
        reference: fixtures, seeds and admin corrections. Returns the account's new balance."""
        if amount == 0:
            raise ValueError("an adjustment moves money")
        target = ledger.Ref(to, str(user_id), user_id)
        move = (ledger.Move(reference, ledger.ADJUSTMENT, target, amount, "adjust") if amount > 0 else
                ledger.Move(reference, target, ledger.ADJUSTMENT, -amount, "adjust"))
        async with self._db.write() as session:
            found = await ledger.accounts(session, [target], self._clock.now())
            await ledger.post(session, [move], self._clock.now(), known=found)
            return found[target].balance

    async def debit(self, user_id: int, amount: int, *, reference: str) -> int:
        """Take `amount` from the wallet once per reference; InsufficientFunds below zero."""
        return await self.adjust(user_id, -amount, reference=reference)

    async def credit(self, user_id: int, amount: int, *, reference: str) -> int:
        """Add `amount` to the wallet once per reference (fixtures and seeds; people top up through gateways)."""
        return await self.adjust(user_id, amount, reference=reference)


def _subject(reference: str) -> str:
    """What a transfer without a payment was about, from its reference ("bchold:7:wallet" -> "#7",
    "order:12:release" -> "P12")."""
    head, _, rest = reference.partition(":")
    first = rest.split(":")[0]
    if head.startswith("bc") and first.isdigit():
        return f"#{first}"
    if head == "payout" and first.isdigit():  # payout:12:hold -> the withdrawal's number
        return f"#{first}"
    if head == "order" and first.isdigit():  # order:12:pay -> the order's code as people know it
        return f"P{first}"
    return ""


async def user_views(session: AsyncSession, users: list[User]) -> dict[int, UserView]:
    """Views of `users` with their wallet and earnings balances, in one query."""
    found = await ledger.balances(session, [u.id for u in users])
    return {u.id: user_view(u, *found[u.id]) for u in users}
