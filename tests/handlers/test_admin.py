"""ADMIN in chat, message by message on a real database: held payments decided, wallets corrected (with a second
admin above the limit), people verified, the dashboard and the daily summary — and nobody else can do any of it."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.app import build_runtime
from handlers.i18n import render_notice
from services.clock import FrozenClock
from storage.migrate import upgrade
from storage.models import AdminAction, Payment, User
from tests.handlers.conftest import Talk, labels
from tests.support.harness import write_settings
from tests.support.money import assert_books_hold

ADMIN, SECOND, SITI = 9001, 9002, 1002
ADMIN_WA = "6281100000001"


@pytest.fixture
async def talk(tmp_path, fresh_db_url):
    settings = write_settings(tmp_path, {
        "database": {"url": fresh_db_url}, "payments": {"gateways": ["sandbox"]},
        "jastip": {"media_dir": str(tmp_path / "media")}, "support": {"contact": "WhatsApp 0811-1111-2222"},
        "admin": {"telegram_ids": [str(ADMIN), str(SECOND)], "whatsapp_ids": [ADMIN_WA],
                  "correction_approval": 1_000_000, "summary_hour": 8},
    })
    clock = FrozenClock(datetime(2026, 12, 2, 3, 0, tzinfo=UTC))  # 10:00 WIB
    rt = build_runtime(settings, clock=clock)
    await upgrade(rt.db)
    yield Talk(rt)
    await rt.delivery.close()
    await rt.http.aclose()
    await rt.db.close()


async def held_payment(talk: Talk, bill: int = 50_000, paid: int = 45_000) -> str:
    """Siti asks for a top-up of `bill` and the gateway reports `paid`: the payment is held."""
    await talk(SITI, "/topup 50rb" if bill == 50_000 else f"/topup {bill}", name="Siti")
    async with talk.rt.db.read() as session:
        order_id = (await session.scalars(select(Payment.order_id).order_by(Payment.id.desc()))).first()
    sandbox = next(g for g in talk.rt.gateways if g.name == "sandbox")
    body, headers = sandbox.signed_callback(order_id, paid, "paid")
    outcome = await talk.rt.settlement.receive_callback("sandbox", body, headers)
    assert outcome.outcome.result == "held"
    return order_id


async def status_of(talk: Talk, order_id: str) -> str:
    async with talk.rt.db.read() as session:
        return await session.scalar(select(Payment.status).where(Payment.order_id == order_id))


async def audit(talk: Talk) -> list[tuple[str, str, int | None]]:
    async with talk.rt.db.read() as session:
        return [(a.action, a.target, a.amount) for a in (await session.scalars(
            select(AdminAction).order_by(AdminAction.id))).all()]


async def test_someone_who_is_not_an_admin_gets_the_support_hint_and_admin_buttons_do_nothing(talk):
    reply = await talk.text(SITI, "ADMIN KOREKSI tg:1002 +5000000 hadiah")
    assert "hubungi WhatsApp 0811-1111-2222" in reply
    order_id = await held_payment(talk)
    reply = await talk.text(SITI, data=f"adm:kredit:{order_id}")
    assert "bantuan" in reply and await status_of(talk, order_id) == "held"
    assert await talk.rt.services.wallet.balance(await user_id(talk, SITI)) == 0
    assert await audit(talk) == []


async def user_id(talk: Talk, who: int | str, channel: str = "telegram") -> int:
    async with talk.rt.db.read() as session:
        return await session.scalar(select(User.id).where(User.channel == channel, User.external_id == str(who)))


async def test_an_admin_credits_a_held_payment_once_however_often_it_is_tapped(talk):
    order_id = await held_payment(talk)
    assert [n["order_id"] for n in await talk.notices("admin_payment_held")] == [order_id] * 3  # 2 tg + 1 wa admins
    listing = await talk(ADMIN, "ADMIN PEMBAYARAN", name="Ani")
    assert "Pembayaran yang perlu diputuskan (1)" in listing[0].text
    assert f"{order_id} · Siti (tg:{SITI})" in listing[1].text and "gateway melaporkan Rp45.000" in listing[1].text
    assert labels(listing) == ["Ya, masukkan saldo", "Tolak & kembalikan", "Cek ke gateway"]

    taps = await asyncio.gather(*(talk(admin, data=f"adm:kredit:{order_id}", name="Ani")
                                  for admin in (ADMIN, SECOND, ADMIN)))
    texts = [r[0].text for r in taps]
    assert sum("dimasukkan ke saldo Siti" in t for t in texts) == 1
    assert sum("sudah diputuskan sebelumnya" in t for t in texts) == 2
    assert await status_of(talk, order_id) == "paid"
    assert await talk.rt.services.wallet.balance(await user_id(talk, SITI)) == 45_000
    [told] = await talk.notices("payment_held_credited")
    assert told["amount"] == 45_000 and told["balance"] == 45_000
    assert [(a, t) for a, t, _ in await audit(talk)] == [("credit", order_id)]
    await assert_books_hold(talk.rt.db)


async def test_a_refused_payment_waits_in_suspense_until_the_admin_says_it_went_back_outside(talk):
    order_id = await held_payment(talk)
    assert "Tulis: ADMIN TOLAK" in await talk.text(ADMIN, f"ADMIN TOLAK {order_id}")  # a reason is required
    reply = await talk(ADMIN, f"ADMIN TOLAK {order_id} nominal salah, minta transfer ulang")
    assert "ditolak" in reply[0].text and labels(reply) == ["Sudah dikembalikan di luar Titip"]
    assert await status_of(talk, order_id) == "refused"
    [told] = await talk.notices("payment_held_refused")
    assert told == {"order_id": order_id, "amount": 45_000}
    assert "dikembalikan ke rekening atau e-wallet asalmu" in render_notice("telegram", "id", "payment_held_refused",
                                                                             told).text
    # Refused money cannot be credited any more.
    assert "sudah diputuskan sebelumnya" in await talk.text(ADMIN, f"ADMIN KREDIT {order_id} ternyata benar")
    reply = await talk.text(ADMIN, data=f"adm:luar:{order_id}")
    assert "Rp45.000 dicatat sudah kembali" in reply
    assert await status_of(talk, order_id) == "refunded"
    assert await talk.rt.services.wallet.balance(await user_id(talk, SITI)) == 0
    assert [(a, t) for a, t, _ in await audit(talk)] == [("refuse", order_id), ("refunded_outside", order_id)]
    await assert_books_hold(talk.rt.db)


async def test_admin_check_asks_the_gateway_and_unknown_codes_are_answered_plainly(talk):
    order_id = await held_payment(talk)
    reply = await talk(ADMIN, f"ADMIN CEK {order_id}")
    assert "Kata gateway: lunas, Rp45.000" in reply[0].text and "Di Titip: ditahan" in reply[0].text
    assert "Cek ke gateway" not in labels(reply) and "Ya, masukkan saldo" in labels(reply)
    assert "tidak ditemukan" in await talk.text(ADMIN, "ADMIN CEK TT000")
    assert "Tulis: ADMIN CEK" in await talk.text(ADMIN, "ADMIN CEK")
    assert "Perintah admin:" in await talk.text(ADMIN, "ADMIN BANTUAN")
    assert "payouts.provider" in await talk.text(ADMIN, "ADMIN PENARIKAN")  # withdrawals are off here


async def test_a_correction_shows_name_and_balance_and_moves_the_wallet_only_after_yes(talk):
    await talk(SITI, "halo", name="Siti")
    siti = await user_id(talk, SITI)
    await talk.rt.services.wallet.credit(siti, 10_000, reference="seed")
    reply = await talk(ADMIN, f"ADMIN KOREKSI tg:{SITI} +25rb kompensasi gangguan")
    text = reply[0].text
    assert "Siti (tg:1002)" in text and "Saldo sekarang: Rp10.000" in text and "Koreksi: +Rp25.000" in text
    assert "Saldo sesudahnya: Rp35.000" in text and labels(reply) == ["Ya, koreksi saldo", "Tidak"]
    assert await talk.rt.services.wallet.balance(siti) == 10_000  # nothing yet
    approval = re.search(r"adm:ya:(\d+)", str(reply[0].buttons)).group(1)
    assert "hanya dia" in await talk.text(SECOND, data=f"adm:ya:{approval}")
    assert "Rp35.000" in await talk.text(ADMIN, data=f"adm:ya:{approval}")
    assert "sudah diputuskan" in await talk.text(ADMIN, data=f"adm:ya:{approval}")
    assert await talk.rt.services.wallet.balance(siti) == 35_000
    [told] = await talk.notices("balance_corrected")
    assert told["change"] == 25_000 and told["balance"] == 35_000

    # Below zero is refused before anything is asked.
    assert "minus" in await talk.text(ADMIN, f"ADMIN KOREKSI tg:{SITI} -50000 salah catat")
    reply = await talk(ADMIN, f"ADMIN KOREKSI tg:{SITI} -5000 salah catat")
    approval = re.search(r"adm:batal:(\d+)", str(reply[0].buttons)).group(1)
    assert "dibatalkan" in await talk.text(ADMIN, data=f"adm:batal:{approval}")
    assert await talk.rt.services.wallet.balance(siti) == 35_000
    assert [(a, amount) for a, _, amount in await audit(talk)] == [("correction", 25_000)]
    await assert_books_hold(talk.rt.db)


async def test_a_large_credit_needs_a_second_admin_who_is_not_the_one_asking(talk):
    await talk(SITI, "halo", name="Siti")
    siti = await user_id(talk, SITI)
    reply = await talk(ADMIN, f"ADMIN KOREKSI tg:{SITI} +2jt hadiah lomba", name="Ani")
    assert "disetujui admin lain" in reply[0].text and labels(reply) == ["Ya, kirim", "Tidak"]
    approval = re.search(r"adm:ya:(\d+)", str(reply[0].buttons)).group(1)
    assert "sudah dikirim ke admin lain" in await talk.text(ADMIN, data=f"adm:ya:{approval}")
    requests = await talk.notices("admin_approval_request")
    assert len(requests) == 2 and all(r["change"] == 2_000_000 for r in requests)  # SECOND and the WhatsApp admin
    assert await talk.rt.services.wallet.balance(siti) == 0
    assert "admin lain yang harus" in await talk.text(ADMIN, data=f"adm:setuju:{approval}")
    assert "Rp2.000.000" in await talk.text(SECOND, data=f"adm:setuju:{approval}")
    assert "sudah diputuskan" in await talk.text(ADMIN_WA, data=f"adm:setuju:{approval}", channel="whatsapp")
    assert await talk.rt.services.wallet.balance(siti) == 2_000_000
    assert [a for a, _, _ in await audit(talk)] == ["correction_request", "correction"]
    await assert_books_hold(talk.rt.db)


async def test_verification_is_recorded_once_and_lifts_the_unverified_cap(talk):
    await talk("6281234567890", "halo", channel="whatsapp", name="Rina")
    assert "tidak ditemukan" in await talk.text(ADMIN, "ADMIN VERIFIKASI wa:6289999999999")
    assert "ditandai sudah diverifikasi" in await talk.text(ADMIN, "ADMIN VERIFIKASI wa:081234567890 KTP dicek")
    assert "sudah diverifikasi sebelumnya" in await talk.text(ADMIN, "ADMIN VERIFIKASI wa:6281234567890")
    assert len(await talk.notices("account_verified")) == 1
    reply = await talk.text("6281234567890", "topup 5000000", channel="whatsapp", name="Rina")
    assert "maksimal" not in reply and "5.000.000" in reply
    assert [(a, t) for a, t, _ in await audit(talk)] == [("verify", "wa:6281234567890")]


async def test_the_dashboard_and_the_daily_summary_count_what_waits_for_admins(talk):
    order_id = await held_payment(talk)
    text = await talk.text(ADMIN, "admin")
    assert "Pembayaran ditahan: 1 (Rp45.000)" in text and "Menunggu keputusan admin: Rp45.000" in text
    assert "Pembukuan: beres ✅" in text
    assert await talk.rt.services.admin.send_daily_summary()
    assert not await talk.rt.services.admin.send_daily_summary()  # once a day
    summaries = await talk.notices("admin_summary")
    assert len(summaries) == 3 and summaries[0]["held"] == 1 and summaries[0]["held_amount"] == 45_000
    assert summaries[0]["problems"] == 0 and order_id
