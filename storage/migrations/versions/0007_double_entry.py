"""Double-entry: accounts and transfers, payments with purpose / account / paid and refunded amounts, admin
audit and approvals; the single-entry ledger carried over entry by entry.

Every historical ledger entry becomes one transfer with its own reference and time (no opening balances):
top-ups gateway -> wallet, reversals and refunds wallet -> gateway, broadcast holds wallet -> hold and
releases hold -> wallet (a finished broadcast's charge then hold -> revenue), anything else adjustment <->
wallet. Shortfalls of old reversals (money already spent) become the user's receivable; held payments' money
goes gateway -> suspense. The migration refuses to finish if any wallet's balance would differ from the
balance the user had.

Revision ID: 0007
Revises: 0006
"""

import re
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
When = sa.DateTime(timezone=True)
KINDS = ("wallet", "earnings", "escrow", "hold", "client", "revenue", "suspense", "gateway", "provider",
         "receivable", "fees", "adjustment")
CREDIT_NORMAL = {"wallet", "earnings", "escrow", "hold", "client", "revenue", "suspense"}
DERIVED = {"gateway", "revenue", "fees", "adjustment"}
STATUSES = ("created", "pending", "paid", "failed", "expired", "held", "refused", "reversed", "refunded",
            "partially_refunded")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("user_id", BigId, sa.ForeignKey("users.id"), index=True),
        sa.Column("balance", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("status", sa.String(12)),
        sa.Column("created_at", When, nullable=False),
        sa.UniqueConstraint("kind", "key", name="uq_accounts_kind_key"),
        sa.CheckConstraint("balance >= 0", name="ck_accounts_balance_nonnegative"),
        sa.CheckConstraint("kind IN (" + ",".join(f"'{k}'" for k in KINDS) + ")", name="ck_accounts_kind"),
    )
    op.create_table(
        "transfers",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("reference", sa.String(160), nullable=False, unique=True),
        sa.Column("debit_id", BigId, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("credit_id", BigId, sa.ForeignKey("accounts.id"), nullable=False),
        sa.Column("amount", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("payment_id", BigId, sa.ForeignKey("payments.id"), index=True),
        sa.Column("created_at", When, nullable=False),
        sa.CheckConstraint("amount > 0", name="ck_transfers_amount_positive"),
        sa.CheckConstraint("debit_id <> credit_id", name="ck_transfers_two_accounts"),
    )
    op.create_index("ix_transfers_debit", "transfers", ["debit_id", "id"])
    op.create_index("ix_transfers_credit", "transfers", ["credit_id", "id"])
    op.create_index("ix_transfers_created", "transfers", ["created_at"])
    _balances_follow_transfers()
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("purpose", sa.String(8), nullable=False, server_default="topup"))
        batch.add_column(sa.Column("account_id", BigId, sa.ForeignKey("accounts.id", name="fk_payments_account")))
        batch.add_column(sa.Column("paid_amount", sa.BigInteger))
        batch.add_column(sa.Column("refunded_amount", sa.BigInteger, nullable=False, server_default="0"))
        batch.add_column(sa.Column("method", sa.String(32)))
        batch.drop_constraint("ck_payments_status_known", type_="check")
        batch.create_check_constraint("ck_payments_status_known",
                                      "status IN (" + ",".join(f"'{s}'" for s in STATUSES) + ")")
        batch.create_check_constraint("ck_payments_purpose", "purpose IN ('topup','order','deposit')")
        batch.create_check_constraint("ck_payments_refunded_nonnegative", "refunded_amount >= 0")
    op.create_table(
        "admin_actions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("admin_id", BigId, sa.ForeignKey("users.id"), nullable=False, index=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("target", sa.String(128), nullable=False),
        sa.Column("amount", sa.BigInteger),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("created_at", When, nullable=False, index=True),
    )
    op.create_table(
        "approvals",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("params", sa.JSON, nullable=False),
        sa.Column("requested_by", BigId, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("decided_by", BigId, sa.ForeignKey("users.id")),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("created_at", When, nullable=False),
        sa.Column("decided_at", When),
        sa.CheckConstraint("status IN ('draft','pending','approved','rejected','expired')", name="ck_approvals_status"),
    )
    _carry_over()
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("verified_at", When))
        batch.drop_constraint("ck_users_balance_nonnegative", type_="check")
        batch.drop_column("balance")
    _append_only("transfers")


def _balances_follow_transfers() -> None:
    """A tracked account's balance is changed by the database itself when a transfer is inserted, so a transfer
    that would make one negative is refused whoever inserts it (the CHECK on accounts.balance fails)."""
    credit_normal = ",".join(f"'{k}'" for k in sorted(CREDIT_NORMAL))
    derived = ",".join(f"'{k}'" for k in sorted(DERIVED))
    debit_side = (f"UPDATE accounts SET balance = balance + CASE WHEN kind IN ({credit_normal}) "
                  f"THEN -NEW.amount ELSE NEW.amount END WHERE id = NEW.debit_id AND kind NOT IN ({derived});")
    credit_side = (f"UPDATE accounts SET balance = balance + CASE WHEN kind IN ({credit_normal}) "
                   f"THEN NEW.amount ELSE -NEW.amount END WHERE id = NEW.credit_id AND kind NOT IN ({derived});")
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"CREATE TRIGGER transfers_move_balances AFTER INSERT ON transfers BEGIN "
                   f"{debit_side} {credit_side} END")
    else:
        op.execute(f"CREATE FUNCTION transfers_move_balances() RETURNS trigger AS $$ BEGIN "
                   f"{debit_side} {credit_side} RETURN NEW; END; $$ LANGUAGE plpgsql")
        op.execute("CREATE TRIGGER transfers_move_balances AFTER INSERT ON transfers "
                   "FOR EACH ROW EXECUTE FUNCTION transfers_move_balances()")


def _append_only(table: str) -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute(f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
                   f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")
        op.execute(f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
                   f"BEGIN SELECT RAISE(ABORT, '{table} is append-only'); END")
    else:
        op.execute(f"CREATE FUNCTION {table}_append_only() RETURNS trigger AS $$ "
                   f"BEGIN RAISE EXCEPTION '{table} is append-only'; END; $$ LANGUAGE plpgsql")
        op.execute(f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
                   f"FOR EACH ROW EXECUTE FUNCTION {table}_append_only()")


class _Books:
    """Replays history into accounts and transfers, keeping tracked balances in memory."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn
        self.meta = sa.MetaData()
        self.accounts = sa.Table("accounts", self.meta, autoload_with=conn)
        self.transfers = sa.Table("transfers", self.meta, autoload_with=conn)
        self.ids: dict[tuple[str, str], int] = {}
        self.balances: dict[int, int] = {}
        self.kinds: dict[int, str] = {}
        self.rows: list[dict[str, Any]] = []
        self.now = datetime.now(UTC)

    def account(self, kind: str, key: str, user_id: int | None = None, status: str | None = None) -> int:
        if (kind, key) not in self.ids:
            account_id = int(self.conn.execute(self.accounts.insert().values(
                kind=kind, key=key, user_id=user_id, balance=0, status=status, created_at=self.now)
                .returning(self.accounts.c.id)).scalar_one())
            self.ids[(kind, key)], self.kinds[account_id], self.balances[account_id] = account_id, kind, 0
        return self.ids[(kind, key)]

    def move(self, reference: str, debit: int, credit: int, amount: int, kind: str, when: datetime | str,
             payment_id: int | None = None) -> None:
        if amount <= 0:
            return
        if isinstance(when, str):  # SQLite hands raw-SQL timestamps back as text (UTC, without a zone)
            when = datetime.fromisoformat(when).replace(tzinfo=UTC)
        for account_id, sign in ((debit, -1), (credit, 1)):
            natural = sign if self.kinds[account_id] in CREDIT_NORMAL else -sign
            self.balances[account_id] += natural * amount
        self.rows.append({"reference": reference, "debit_id": debit, "credit_id": credit, "amount": amount,
                          "kind": kind, "payment_id": payment_id, "created_at": when})

    def write(self) -> None:
        """Insert the transfers; the database moves the balances (and refuses any that would go negative)."""
        if self.rows:
            self.conn.execute(self.transfers.insert(), self.rows)


def _carry_over() -> None:
    conn = op.get_bind()
    books = _Books(conn)
    users = {row.id: row.balance for row in conn.execute(sa.text("SELECT id, balance FROM users"))}
    payments = {row.id: row for row in conn.execute(sa.text(
        "SELECT id, user_id, gateway, amount, status, flag_reason, updated_at FROM payments"))}
    broadcasts = {row.id: row for row in conn.execute(sa.text("SELECT id, status, finished_at FROM broadcasts"))}
    for user_id in users:
        books.account("wallet", str(user_id), user_id)
    entries = conn.execute(sa.text(
        "SELECT id, user_id, amount, kind, reference, created_at FROM ledger_entries ORDER BY id")).all()
    debited: dict[int, int] = {}  # payment id -> what reversals/refunds took from the wallet
    for entry in entries:
        wallet = books.account("wallet", str(entry.user_id), entry.user_id)
        head, _, rest = entry.reference.partition(":")
        amount = abs(int(entry.amount))
        payment = payments.get(int(rest)) if head in ("topup", "reversal", "refund") and rest.isdigit() else None
        if payment is not None:
            gateway = books.account("gateway", payment.gateway)
            if head == "topup":
                books.move(entry.reference, gateway, wallet, amount, "topup", entry.created_at, payment.id)
            else:
                books.move(entry.reference, wallet, gateway, amount, head, entry.created_at, payment.id)
                debited[payment.id] = debited.get(payment.id, 0) + amount
        elif head == "bchold":
            hold = books.account("hold", f"broadcast:{rest}", entry.user_id)
            books.move(entry.reference, wallet, hold, amount, "hold", entry.created_at)
        elif head == "bcfail":
            hold = books.account("hold", f"broadcast:{rest.split(':')[0]}", entry.user_id)
            books.move(entry.reference, hold, wallet, amount, "release", entry.created_at)
        else:
            adjustment = books.account("adjustment", "")
            if entry.amount > 0:
                books.move(entry.reference, adjustment, wallet, amount, "adjust", entry.created_at)
            else:
                books.move(entry.reference, wallet, adjustment, amount, "adjust", entry.created_at)
    # A finished broadcast's charge leaves its hold for revenue; a running one keeps its hold pending.
    for (kind, key), account_id in list(books.ids.items()):
        if kind != "hold":
            continue
        broadcast = broadcasts.get(int(key.split(":")[1]))
        done = broadcast is not None and broadcast.status == "done"
        if broadcast is not None and done and books.balances[account_id] > 0:
            books.move(f"bcpost:{broadcast.id}", account_id, books.account("revenue", ""),
                       books.balances[account_id], "charge", broadcast.finished_at or books.now)
        conn.execute(books.accounts.update().where(books.accounts.c.id == account_id)
                     .values(status="posted" if done else "pending"))
    for payment in payments.values():
        wallet = books.account("wallet", str(payment.user_id), payment.user_id)
        values: dict[str, Any] = {"account_id": wallet, "purpose": "topup"}
        if payment.status in ("paid", "reversed", "refunded"):
            values["paid_amount"] = payment.amount
        outstanding = re.search(r"(\d+) outstanding", payment.flag_reason or "")
        if payment.status in ("reversed", "refunded"):
            owed = int(outstanding.group(1)) if outstanding else 0
            if owed:
                receivable = books.account("receivable", str(payment.user_id), payment.user_id)
                books.move(f"owed:{payment.id}", receivable, books.account("gateway", payment.gateway), owed,
                           "owed", payment.updated_at, payment.id)
            values["refunded_amount"] = debited.get(payment.id, 0) + owed
        if payment.status == "held":
            said = re.search(r"gateway says (\d+)", payment.flag_reason or "")
            if said:
                paid = int(said.group(1))
                values["paid_amount"] = paid
                books.move(f"held:{payment.id}", books.account("gateway", payment.gateway),
                           books.account("suspense", ""), paid, "held", payment.updated_at, payment.id)
        conn.execute(sa.text("UPDATE payments SET account_id = :account_id, purpose = :purpose"
                             + "".join(f", {k} = :{k}" for k in values if k not in ("account_id", "purpose"))
                             + " WHERE id = :pid"), {**values, "pid": payment.id})
    books.write()
    stored: dict[str, int] = {key: balance for key, balance in conn.execute(
        sa.text("SELECT key, balance FROM accounts WHERE kind = 'wallet'")).all()}
    for user_id, balance in users.items():
        carried = int(stored.get(str(user_id), 0))
        if carried != balance:
            raise RuntimeError(f"user {user_id}: balance {balance} but the ledger replays to {carried}; "
                               "refusing to migrate money that does not add up")


def downgrade() -> None:
    raise NotImplementedError("migrations only move forward; restore a backup to go back")
