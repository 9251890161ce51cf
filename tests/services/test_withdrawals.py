"""Withdrawals (services/withdrawals.py) on SQLite and PostgreSQL, through the sandbox provider and the loopback
fakes of Xendit, Midtrans (Iris) and Duitku: earned money only, held when requested, sent at most once, back to
earnings only on a definite refusal — with the books whole after every test (conftest runs `ledger check`)."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from sqlalchemy import or_, select, update

from services import ledger
from services.clock import FrozenClock
from services.errors import BadSignature, UserInputError
from services.inbound import Inbounds
from services.payouts.duitku import DuitkuPayouts
from services.payouts.midtrans import MidtransPayouts
from services.payouts.sandbox import SandboxPayouts
from services.payouts.xendit import XenditPayouts
from services.withdrawals import Withdrawals
from storage.db import Database
from storage.models import Account, OutboxMessage, Payout, PayoutAttempt, Transfer, User
from tests.support.money import balance, seed
from tests.support.payouts import FakeDuitkuDisbursement, FakeIris, FakeXenditPayouts, forged
from tests.support.servers import TcpProxy

ADMINS = [("telegram", "9001")]


async def person(db: Database, clock: FrozenClock, external_id: str, *, verified: bool = True) -> int:
    user = (await Inbounds(db, clock).register(channel="telegram", external_id=external_id,
                                               display_name=external_id.title(), update_key=None)).user
    if verified:
        async with db.write() as session:
            await session.execute(update(User).where(User.id == user.id).values(verified_at=clock.now()))
    return user.id


async def earn(db: Database, clock: FrozenClock, user_id: int, amount: int, reference: str) -> None:
    """Earnings as escrow releases leave them."""
    await seed(db, clock.now(), ledger.earnings(user_id), amount, reference)


async def top_up(db: Database, clock: FrozenClock, user_id: int, amount: int, reference: str) -> None:
    await seed(db, clock.now(), ledger.wallet(user_id), amount, reference)


async def sent_through(db: Database, provider: str) -> int:
    """What went out through a provider and stayed out (hold -> provider, less provider -> earnings)."""
    async with db.read() as session:
        account = await session.scalar(select(Account.id).where(Account.kind == "provider", Account.key == provider))
        if account is None:
            return 0
        return int(await session.scalar(select(ledger.derived_balance_sql(Account.id)).select_from(Transfer).join(
            Account, or_(Transfer.debit_id == Account.id, Transfer.credit_id == Account.id))
            .where(Account.id == account)) or 0)


async def payout(db: Database, payout_id: int) -> Payout:
    async with db.read() as session:
        return await session.get_one(Payout, payout_id)


async def notices(db: Database, template: str) -> list[OutboxMessage]:
    async with db.read() as session:
        return list((await session.scalars(select(OutboxMessage).where(OutboxMessage.template == template))).all())


class Desk:
    """A verified jastiper (Tina) with earnings and a confirmed account past its hold, and a Withdrawals service."""

    def __init__(self, db: Database, clock: FrozenClock, provider, **options) -> None:
        self.db, self.clock = db, clock
        self.w = Withdrawals(db, clock, provider, admins=ADMINS, check_every_s=60, **options)

    async def start(self, *, earned: int = 500_000, bank: str = "bca", number: str = "0011223344",
                    verified: bool = True) -> "Desk":
        self.tina = await person(self.db, self.clock, "tina", verified=verified)
        if earned:
            await earn(self.db, self.clock, self.tina, earned, "seed:tina")
        draft = await self.w.draft_account(self.tina, bank, number, "Siti Aminah")
        await self.w.confirm_account(self.tina, draft.id)
        self.clock.advance(hours=25)
        return self

    async def withdraw(self, amount: int | None, key: str = "k1") -> int:
        quote = await self.w.quote(self.tina, amount)
        return (await self.w.request(self.tina, quote.amount, key)).id

    async def earnings(self) -> int:
        return await balance(self.db, ledger.earnings(self.tina))


@pytest.fixture
async def http():
    async with httpx.AsyncClient(timeout=5) as client:
        yield client


@pytest.fixture
async def sandbox(http):
    return SandboxPayouts(secret="s3cret", public_url="http://127.0.0.1:1", http=http)


# --- who may withdraw what -------------------------------------------------------------------------------

async def test_a_verified_jastiper_withdraws_earnings_through_the_sandbox_and_the_hold_is_posted(db, sandbox):
    clock = FrozenClock()
    desk = await Desk(db, clock, sandbox, fee=2_500).start()
    payout_id = await desk.withdraw(100_000)
    assert await desk.earnings() == 500_000 - 102_500  # held the moment it is requested
    assert await balance(db, ledger.hold(f"payout:{payout_id}")) == 102_500
    assert await desk.w.run() == 1
    assert (await payout(db, payout_id)).status == "processing"

    key = await desk.w.attempt_key(payout_id)
    body, headers = sandbox.signed_callback(key, 100_000, "completed")
    assert await desk.w.callback("sandbox", body, headers)
    assert await desk.w.callback("sandbox", body, headers)  # a repeated callback moves nothing more
    done = await payout(db, payout_id)
    assert done.status == "completed" and done.completed_at is not None
    assert await balance(db, ledger.hold(f"payout:{payout_id}")) == 0
    assert await sent_through(db, "sandbox") == 100_000
    assert await desk.earnings() == 397_500
    assert [n.params["payout"] for n in await notices(db, "payout_completed")] == [payout_id]


async def test_top_up_money_can_never_be_withdrawn_by_any_path(db, sandbox):
    clock = FrozenClock()
    desk = await Desk(db, clock, sandbox).start(earned=0)
    await top_up(db, clock, desk.tina, 3_000_000, "seed:wallet")
    with pytest.raises(UserInputError) as everything:
        await desk.w.quote(desk.tina, None)
    assert everything.value.key == "payout_below_minimum"
    with pytest.raises(UserInputError) as some:
        await desk.w.quote(desk.tina, 100_000)
    assert some.value.key == "payout_short"
    with pytest.raises(UserInputError):  # a forged button with a made-up key asks the same checks
        await desk.w.request(desk.tina, 100_000, "forged")
    await earn(db, clock, desk.tina, 60_000, "seed:earned")
    with pytest.raises(UserInputError):  # wallet + earnings would cover it; earnings alone do not
        await desk.w.request(desk.tina, 100_000, "k2")
    assert (await desk.w.quote(desk.tina, None)).amount == 60_000
    assert await balance(db, ledger.wallet(desk.tina)) == 3_000_000
    async with db.read() as session:
        assert (await session.scalars(select(Payout))).all() == []


async def test_an_unverified_jastiper_and_one_without_an_account_are_told_what_to_do(db, sandbox):
    clock = FrozenClock()
    desk = await Desk(db, clock, sandbox).start(verified=False)
    with pytest.raises(UserInputError) as unverified:
        await desk.w.quote(desk.tina, 100_000)
    assert unverified.value.key == "payout_not_verified"
    rina = await person(db, clock, "rina")
    await earn(db, clock, rina, 200_000, "seed:rina")
    with pytest.raises(UserInputError) as no_account:
        await desk.w.quote(rina, 100_000)
    assert no_account.value.key == "payout_no_account"


async def test_a_new_or_changed_account_waits_its_hold_and_admins_are_told(db, sandbox):
    clock = FrozenClock()
    desk = await Desk(db, clock, sandbox, new_account_hold_hours=24).start()
    draft = await desk.w.draft_account(desk.tina, "DANA", "0812-3456-7890", "Siti Aminah")
    assert draft.number == "****7890" and not draft.confirmed
    with pytest.raises(UserInputError):  # someone else's tap on the draft
        await desk.w.confirm_account(desk.tina + 1000, draft.id)
    saved = await desk.w.confirm_account(desk.tina, draft.id)
    assert saved.bank == "DANA"
    with pytest.raises(UserInputError) as waiting:
        await desk.w.quote(desk.tina, 100_000)
    assert waiting.value.key == "payout_account_waiting"
    admin = await notices(db, "admin_payout_account")
    assert admin and "6281234567890" not in str(admin[-1].params) and admin[-1].params["number"] == "****7890"
    clock.advance(hours=24, seconds=1)
    payout_id = await desk.withdraw(100_000)
    assert (await payout(db, payout_id)).number == "6281234567890"  # e-wallet numbers as 62…


@pytest.mark.parametrize(("bank", "number", "key"), [("bcaa", "123456", "payout_bank_unknown"),
                                                      ("bca", "12ab", "payout_number_invalid"),
                                                      ("ovo", "12345", "payout_number_invalid_ewallet")])
async def test_a_wrong_bank_or_number_is_refused_with_what_to_type(db, sandbox, bank, number, key):
    clock = FrozenClock()
    tina = await person(db, clock, "tina")
    with pytest.raises(UserInputError) as refused:
        await Withdrawals(db, clock, sandbox).draft_account(tina, bank, number, "Siti Aminah")
    assert refused.value.key == key


# --- races -------------------------------------------------------------------------------------------------

async def test_two_devices_withdrawing_at_once_never_overdraw_earnings(db, sandbox):
    clock = FrozenClock()
    desk = await Desk(db, clock, sandbox).start(earned=150_000)
    results = await asyncio.gather(*(desk.w.request(desk.tina, 100_000, f"device{i}") for i in range(6)),
                                   return_exceptions=True)
    made = [r for r in results if not isinstance(r, BaseException)]
    assert len(made) == 1, results
    assert all(isinstance(r, UserInputError) for r in results if isinstance(r, BaseException))
    assert await desk.earnings() == 50_000


async def test_a_double_tap_on_the_confirmation_makes_one_payout(db, sandbox):
    clock = FrozenClock()
    desk = await Desk(db, clock, sandbox).start()
    first, second = await asyncio.gather(desk.w.request(desk.tina, 100_000, "tap"),
                                         desk.w.request(desk.tina, 100_000, "tap"))
    assert first.id == second.id
    assert await desk.earnings() == 400_000


# --- approval, failure, waiting for funds, reversal ----------------------------------------------------

async def test_above_the_daily_limit_an_admin_approves_or_rejects(db, sandbox):
    clock = FrozenClock()
    desk = await Desk(db, clock, sandbox, approval_above=150_000).start()
    small = await desk.withdraw(100_000, "a")
    big = await desk.withdraw(100_000, "b")  # 200,000 today: above the limit
    assert (await payout(db, small)).status == "requested"
    assert (await payout(db, big)).status == "awaiting_approval"
    assert [p.id for p in await desk.w.needing_admin()] == [big]
    assert await notices(db, "admin_payout_approval")
    admin = await person(db, clock, "admin")
    with pytest.raises(UserInputError):
        await desk.w.decide(admin, big, "tolak", "")  # a reason is required
    assert await desk.w.decide(admin, big, "tolak", "nama rekening tidak cocok") == "rejected"
    assert await desk.earnings() == 400_000  # the rejected one's hold went back
    third = await desk.withdraw(100_000, "c")
    assert await desk.w.decide(admin, third, "setuju", "") == "requested"
    await desk.w.run()
    assert (await payout(db, third)).status == "processing"


async def test_a_failed_transfer_returns_everything_to_earnings_once(db, sandbox):
    clock = FrozenClock()
    desk = await Desk(db, clock, sandbox, fee=1_000).start()
    payout_id = await desk.withdraw(100_000)
    await desk.w.run()
    body, headers = sandbox.signed_callback(await desk.w.attempt_key(payout_id), 100_000, "failed")
    await desk.w.callback("sandbox", body, headers)
    late, late_headers = sandbox.signed_callback(await desk.w.attempt_key(payout_id), 100_000, "completed")
    await desk.w.callback("sandbox", late, late_headers)  # a late success after a failure changes nothing
    assert (await payout(db, payout_id)).status == "failed"
    assert await desk.earnings() == 500_000
    assert await sent_through(db, "sandbox") == 0


async def test_the_providers_balance_running_out_keeps_the_hold_until_an_admin_tops_it_up(db, sandbox):
    clock = FrozenClock()
    desk = await Desk(db, clock, sandbox).start()
    payout_id = await desk.withdraw(100_000)
    await desk.w.run()
    body, headers = sandbox.signed_callback(await desk.w.attempt_key(payout_id), 100_000, "no_funds")
    await desk.w.callback("sandbox", body, headers)
    assert (await payout(db, payout_id)).status == "waiting_funds"
    assert await desk.earnings() == 400_000  # still held
    assert await notices(db, "payout_delayed") and await notices(db, "admin_payout_no_funds")
    admin = await person(db, clock, "admin")
    assert await desk.w.funds_added(admin) == 1
    await desk.w.run()
    again = await payout(db, payout_id)
    assert again.status == "processing" and again.attempt == 2  # a new attempt: the first definitely failed
    body, headers = sandbox.signed_callback(await desk.w.attempt_key(payout_id), 100_000, "completed")
    await desk.w.callback("sandbox", body, headers)
    assert (await payout(db, payout_id)).status == "completed"


async def test_a_reversal_after_completion_brings_the_money_back_and_alerts_admins(db, sandbox):
    clock = FrozenClock()
    desk = await Desk(db, clock, sandbox, fee=2_000).start()
    payout_id = await desk.withdraw(100_000)
    await desk.w.run()
    key = await desk.w.attempt_key(payout_id)
    for outcome in ("completed", "reversed", "reversed"):
        body, headers = sandbox.signed_callback(key, 100_000, outcome)
        await desk.w.callback("sandbox", body, headers)
    assert (await payout(db, payout_id)).status == "reversed"
    assert await desk.earnings() == 500_000
    assert await sent_through(db, "sandbox") == 0
    assert await notices(db, "admin_payout_reversed") and await notices(db, "payout_reversed")


async def test_a_forged_sandbox_callback_is_refused_and_changes_nothing(db, sandbox):
    clock = FrozenClock()
    desk = await Desk(db, clock, sandbox).start()
    payout_id = await desk.withdraw(100_000)
    await desk.w.run()
    body, headers = sandbox.signed_callback(await desk.w.attempt_key(payout_id), 100_000, "failed")
    with pytest.raises(BadSignature):
        await desk.w.callback("sandbox", *forged(body, headers))
    assert (await payout(db, payout_id)).status == "processing"


# --- Xendit ------------------------------------------------------------------------------------------------

@pytest.fixture
async def xendit():
    async with FakeXenditPayouts() as fake:
        yield fake


def xendit_provider(fake: FakeXenditPayouts, http: httpx.AsyncClient) -> XenditPayouts:
    return XenditPayouts(secret_key=fake.secret_key, callback_token=fake.callback_token, base_url=fake.url, http=http)


async def test_xendit_success_failure_and_reversal_follow_its_callbacks(db, xendit, http):
    clock = FrozenClock()
    desk = await Desk(db, clock, xendit_provider(xendit, http)).start(earned=900_000)
    first = await desk.withdraw(100_000, "a")
    second = await desk.withdraw(200_000, "b")
    await desk.w.run()
    assert {m.extra["channel_code"] for m in xendit.made.values()} == {"ID_BCA"}
    assert await desk.w.callback("xendit", *xendit.finish(f"titip-{first}-1", "SUCCEEDED"))
    await desk.w.callback("xendit", *xendit.finish(f"titip-{second}-1", "FAILED", "INVALID_DESTINATION"))
    assert (await payout(db, first)).status == "completed"
    failed = await payout(db, second)
    assert failed.status == "failed" and failed.failure == "INVALID_DESTINATION"
    assert await desk.earnings() == 800_000
    await desk.w.callback("xendit", *xendit.finish(f"titip-{first}-1", "REVERSED"))
    assert (await payout(db, first)).status == "reversed"
    assert await desk.earnings() == 900_000


async def test_xendit_an_answer_lost_after_the_payout_was_made_is_never_sent_twice(db, xendit, http):
    clock = FrozenClock()
    desk = await Desk(db, clock, xendit_provider(xendit, http)).start()
    xendit.script = ["lost"]
    payout_id = await desk.withdraw(100_000)
    await desk.w.run()
    assert (await payout(db, payout_id)).status == "sending"  # not known: neither failed nor sent blind again
    clock.advance(seconds=61)
    await desk.w.run()  # the check finds it under its reference
    assert (await payout(db, payout_id)).status == "processing"
    assert xendit.creates == 1 and len(xendit.made) == 1
    await desk.w.callback("xendit", *xendit.finish(f"titip-{payout_id}-1", "SUCCEEDED"))
    assert (await payout(db, payout_id)).status == "completed"


async def test_xendit_down_before_the_payout_was_made_is_retried_with_the_same_key(db, xendit, http):
    clock = FrozenClock()
    desk = await Desk(db, clock, xendit_provider(xendit, http)).start()
    xendit.script = ["down"]
    payout_id = await desk.withdraw(100_000)
    await desk.w.run()
    clock.advance(seconds=61)
    await desk.w.run()  # no record under the reference: the same attempt again, with the same key
    assert list(xendit.made) == [f"titip-{payout_id}-1"]
    assert (await payout(db, payout_id)).attempt == 1


async def test_xendit_an_outage_keeps_the_payout_in_flight_tells_the_user_and_the_check_resolves_it(
        db, xendit, http):
    clock = FrozenClock()
    async with TcpProxy(xendit.port) as proxy:
        provider = XenditPayouts(secret_key=xendit.secret_key, callback_token=xendit.callback_token,
                                 base_url=f"http://127.0.0.1:{proxy.port}", http=http)
        desk = await Desk(db, clock, provider).start()
        payout_id = await desk.withdraw(100_000)
        await proxy.cut()  # the provider cannot be reached: create and status both fail
        await desk.w.run()
        clock.advance(seconds=61)
        await desk.w.run()
        assert (await payout(db, payout_id)).status == "sending"
        assert len(await notices(db, "payout_delayed")) == 1  # told once, however many checks fail
        assert await desk.earnings() == 400_000
        await proxy.restore()
        clock.advance(seconds=61)
        await desk.w.run()  # no record under its reference: the same attempt, the same key
        assert (await payout(db, payout_id)).status == "processing" and xendit.creates == 1


async def test_xendit_insufficient_balance_waits_for_funds_and_forged_callbacks_are_refused(db, xendit, http):
    clock = FrozenClock()
    desk = await Desk(db, clock, xendit_provider(xendit, http)).start()
    payout_id = await desk.withdraw(100_000)
    await desk.w.run()
    body, headers = xendit.finish(f"titip-{payout_id}-1", "FAILED", "INSUFFICIENT_BALANCE")
    with pytest.raises(BadSignature):
        await desk.w.callback("xendit", *forged(body, headers))
    assert (await payout(db, payout_id)).status == "processing"
    await desk.w.callback("xendit", body, headers)
    assert (await payout(db, payout_id)).status == "waiting_funds"
    assert await desk.earnings() == 400_000
    clock.advance(seconds=61)
    await desk.w.run()  # the reconciler's next pass: a new attempt, a new key
    assert (await payout(db, payout_id)).attempt == 2 and f"titip-{payout_id}-2" in xendit.made


# --- Midtrans (Iris) ----------------------------------------------------------------------------------------

@pytest.fixture
async def iris():
    async with FakeIris() as fake:
        yield fake


def iris_provider(fake: FakeIris, http: httpx.AsyncClient) -> MidtransPayouts:
    return MidtransPayouts(creator_key=fake.creator_key, approver_key=fake.approver_key,
                           merchant_key=fake.merchant_key, base_url=fake.url, http=http)


async def test_midtrans_validates_the_account_creates_approves_and_follows_notifications(db, iris, http):
    clock = FrozenClock()
    desk = await Desk(db, clock, iris_provider(iris, http)).start(earned=600_000)
    account = await desk.w.account(desk.tina)
    assert account is not None and account.checked_name == "SITI AMINAH"
    with pytest.raises(UserInputError) as unknown:
        await desk.w.draft_account(desk.tina, "bca", "999999", "Siti")
    assert unknown.value.key == "payout_account_invalid"
    first = await desk.withdraw(100_000, "a")
    second = await desk.withdraw(100_000, "b")
    await desk.w.run()
    refs = {m.key.split()[-1]: m.ref for m in iris.made.values()}
    assert all(m.status == "approved" for m in iris.made.values())
    await desk.w.callback("midtrans", *iris.finish(refs[f"titip-{first}-1"], "completed"))
    await desk.w.callback("midtrans", *iris.finish(refs[f"titip-{second}-1"], "failed", "002"))
    assert (await payout(db, first)).status == "completed"
    assert (await payout(db, second)).status == "failed"
    # completed → failed is a bank refund at Midtrans: a reversal.
    await desk.w.callback("midtrans", *iris.finish(refs[f"titip-{first}-1"], "failed", "005"))
    assert (await payout(db, first)).status == "reversed"
    assert await desk.earnings() == 600_000


async def test_midtrans_an_unknown_outcome_goes_to_an_admin_and_is_never_resent(db, iris, http):
    clock = FrozenClock()
    desk = await Desk(db, clock, iris_provider(iris, http)).start()
    iris.script = ["lost"]
    payout_id = await desk.withdraw(100_000)
    await desk.w.run()
    assert (await payout(db, payout_id)).status == "unknown"
    assert await notices(db, "admin_payout_unknown") and await notices(db, "payout_delayed")
    clock.advance(hours=2)
    await desk.w.run()
    assert iris.creates == 1
    assert await desk.earnings() == 400_000  # held until an admin has looked
    admin = await person(db, clock, "admin")
    assert await desk.w.decide(admin, payout_id, "berhasil", "terlihat completed di dasbor Iris") == "completed"
    assert await sent_through(db, "midtrans") == 100_000


async def test_midtrans_merchant_balance_out_waits_and_forged_notifications_are_refused(db, iris, http):
    clock = FrozenClock()
    desk = await Desk(db, clock, iris_provider(iris, http)).start()
    payout_id = await desk.withdraw(100_000)
    await desk.w.run()
    ref = next(iter(iris.made))
    body, headers = iris.finish(ref, "failed", "016")
    with pytest.raises(BadSignature):
        await desk.w.callback("midtrans", *forged(body, headers))
    await desk.w.callback("midtrans", body, headers)
    assert (await payout(db, payout_id)).status == "waiting_funds"


# --- Duitku ---------------------------------------------------------------------------------------------------

@pytest.fixture
async def duitku():
    async with FakeDuitkuDisbursement() as fake:
        yield fake


def duitku_provider(fake: FakeDuitkuDisbursement, http: httpx.AsyncClient) -> DuitkuPayouts:
    return DuitkuPayouts(user_id=fake.user_id, email=fake.email, secret_key=fake.secret_key, base_url=fake.url,
                         http=http)


async def test_duitku_inquiry_names_the_holder_and_a_transfer_completes_or_fails(db, duitku, http):
    clock = FrozenClock()
    desk = await Desk(db, clock, duitku_provider(duitku, http)).start(bank="bca", number="8760673566")
    assert (await desk.w.account(desk.tina)).checked_name == "SITI AMINAH"
    first = await desk.withdraw(100_000, "a")
    duitku.script = ["ok", "invalid"]
    second = await desk.withdraw(100_000, "b")
    await desk.w.run()
    assert (await payout(db, first)).status == "completed"
    assert (await payout(db, second)).status == "failed"
    assert duitku.transfers() == 1 and await desk.earnings() == 400_000


async def test_duitku_a_lost_answer_is_asked_about_and_a_transfer_never_made_is_retried_with_its_disburse_id(
        db, duitku, http):
    clock = FrozenClock()
    desk = await Desk(db, clock, duitku_provider(duitku, http)).start(bank="bca", number="8760673566")
    duitku.script = ["lost", "down"]
    sent = await desk.withdraw(100_000, "a")
    unsent = await desk.withdraw(100_000, "b")
    await desk.w.run()
    assert {(await payout(db, sent)).status, (await payout(db, unsent)).status} == {"sending"}
    clock.advance(seconds=61)
    await desk.w.run()
    assert (await payout(db, sent)).status == "completed"  # inquirystatus: it was transferred
    assert (await payout(db, unsent)).status == "completed"  # not found: the same disburseId sent again
    async with db.read() as session:
        attempts = (await session.scalars(select(PayoutAttempt).order_by(PayoutAttempt.id))).all()
    assert [a.number for a in attempts] == [1, 1] and len(duitku.inquiries) == 3  # 1 account check + 2
    assert sorted(duitku.transferred.values()) == [1, 1]


async def test_duitku_callbacks_apply_only_as_its_status_api_confirms_them(db, duitku, http):
    clock = FrozenClock()
    desk = await Desk(db, clock, duitku_provider(duitku, http)).start(bank="bca", number="8760673566")
    duitku.script = ["pending"]
    payout_id = await desk.withdraw(100_000)
    await desk.w.run()
    assert (await payout(db, payout_id)).status == "processing"
    disburse_id = max(duitku.inquiries)  # the first inquiry was the account check
    body, headers = duitku.callback(disburse_id, "01")  # says failed; inquirystatus says transferred
    await desk.w.callback("duitku", body, headers)
    assert (await payout(db, payout_id)).status == "processing"
    with pytest.raises(BadSignature):
        await desk.w.callback("duitku", *forged(*duitku.callback(disburse_id, "00")))
    await desk.w.callback("duitku", *duitku.callback(disburse_id, "00"))
    assert (await payout(db, payout_id)).status == "completed"


async def test_duitku_insufficient_funds_waits_for_an_admin(db, duitku, http):
    clock = FrozenClock()
    desk = await Desk(db, clock, duitku_provider(duitku, http)).start(bank="bca", number="8760673566")
    duitku.script = ["no_funds"]
    payout_id = await desk.withdraw(100_000)
    await desk.w.run()
    assert (await payout(db, payout_id)).status == "waiting_funds"
    admin = await person(db, clock, "admin")
    await desk.w.funds_added(admin)
    await desk.w.run()
    assert (await payout(db, payout_id)).status == "completed" and duitku.transfers() == 1


async def test_duitku_documents_no_reversal_so_a_late_failure_after_success_moves_nothing(db, duitku, http):
    clock = FrozenClock()
    desk = await Desk(db, clock, duitku_provider(duitku, http)).start(bank="bca", number="8760673566")
    payout_id = await desk.withdraw(100_000)
    await desk.w.run()
    assert (await payout(db, payout_id)).status == "completed"
    disburse_id = max(duitku.inquiries)
    duitku.transferred.pop(disburse_id)  # even if its status API then denies it: a bank return is an admin's call
    await desk.w.callback("duitku", *duitku.callback(disburse_id, "01"))
    assert (await payout(db, payout_id)).status == "completed"
    assert await desk.earnings() == 400_000


async def test_a_payout_retried_days_after_its_funds_ran_out_is_not_taken_as_unknown_at_its_first_lost_answer(
        db, xendit, http):
    clock = FrozenClock()
    async with TcpProxy(xendit.port) as proxy:
        provider = XenditPayouts(secret_key=xendit.secret_key, callback_token=xendit.callback_token,
                                 base_url=f"http://127.0.0.1:{proxy.port}", http=http)
        desk = await Desk(db, clock, provider).start()
        payout_id = await desk.withdraw(100_000)
        await desk.w.run()
        await desk.w.callback("xendit", *xendit.finish(f"titip-{payout_id}-1", "FAILED", "INSUFFICIENT_BALANCE"))
        clock.advance(days=2)  # the server was down over a long weekend
        await proxy.cut()
        await desk.w.run()  # the new attempt's answer is lost: in flight, not in doubt (Xendit can be asked)
        assert (await payout(db, payout_id)).status == "sending"
