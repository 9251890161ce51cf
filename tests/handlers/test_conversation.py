"""The conversation as people meet it, on SQLite and PostgreSQL: every reply in their words, with a next step,
and nobody left stuck. Messages go through the real Conversation (the same one both channel adapters use)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from storage.models import Order, Product, Trip
from tests.handlers.conftest import JASTIPER, RINA, SITI, WA, labels, open_trip


@pytest.mark.parametrize("greeting", ["halo", "Hai", "P", "assalamualaikum", "selamat pagi", "menu", "Halo kak!"])
@pytest.mark.parametrize("channel", ["telegram", "whatsapp"])
async def test_a_first_greeting_gets_the_welcome_with_buttons_never_not_understood(talk, greeting, channel):
    replies = await talk(WA if channel == "whatsapp" else SITI, greeting, channel=channel)
    assert replies[0].text.startswith("Halo Siti! 👋") and "belum mengerti" not in replies[0].text
    assert labels(replies) == ["Tambah saldo", "Saldo saya", "Lihat panduan"]


async def test_the_welcome_without_a_name_reads_naturally(talk):
    text = await talk.text(SITI, "halo", name=None)
    assert text.startswith("Halo! 👋") and "Halo !" not in text


@pytest.mark.parametrize(("typed", "expect"), [
    ("saldo?", "Saldo kamu: Rp0."), ("cek saldo", "Saldo kamu: Rp0."),
    ("isi saldo 50rb", "Tagihan top up Rp50.000 siap"), ("topup 50 ribu", "Tagihan top up Rp50.000 siap"),
    ("isi saldo", "Mau isi saldo berapa?"),
])
async def test_common_phrasings_work(talk, typed, expect):
    assert expect in await talk.text(SITI, typed)


async def test_thanks_is_answered_kindly_and_admin_says_how_to_reach_support(talk):
    assert (await talk.text(SITI, "terima kasih")).startswith("Sama-sama!")
    assert (await talk.text(SITI, "makasih ya")).startswith("Sama-sama!")
    for word in ("admin", "cs", "min"):
        assert "WhatsApp 0811-1111-2222" in await talk.text(SITI, word)


async def test_help_is_per_role_and_lists_recap_broadcast_and_how_to_send_a_proof(talk):
    overview = await talk(SITI, "/bantuan")
    assert labels(overview) == ["Panduan dompet", "Panduan pembeli", "Panduan jastiper"]
    jastiper = await talk.text(SITI, data="help:jastiper")
    assert "REKAP <slug>" in jastiper and "BROADCAST <slug> <pesan>" in jastiper and "PEMBAYARAN" in jastiper
    buyer = await talk.text(SITI, "bantuan pembeli")
    assert "Bukti bayar: balas pesan pesananmu dengan foto" in buyer and "JOIN <slug>" in buyer
    wallet = await talk.text(SITI, "bantuan dompet", channel="whatsapp")
    assert "• topup [nominal]" in wallet  # no slash on WhatsApp


async def test_ordering_from_a_closed_trip_names_the_trip_without_placeholders(talk):
    await open_trip(talk)
    await talk(SITI, "JOIN jpn25 | Nama: Siti")
    await talk(JASTIPER, "TUTUP jpn25")
    text = await talk.text(SITI, "PESAN KK1")
    assert text.startswith("Maaf, trip Jastip Jepang (jpn25) sudah ditutup") and "{" not in text


async def test_trip_lists_my_trips_with_their_products(talk):
    await open_trip(talk)
    text = await talk.text(JASTIPER, "TRIP")
    assert "KK1 — KitKat Matcha: Rp150.000 (stok 5)" in text and "Belum ada produk" not in text


async def test_orders_filter_by_indonesian_status_words(talk):
    await open_trip(talk)
    await talk(SITI, "JOIN jpn25 | Nama: Siti")
    order = re.search(r"P\d+", await talk.text(SITI, "PESAN KK1")).group(0)
    await talk(JASTIPER, f"KONFIRMASI {order}")
    await talk(JASTIPER, f"KIRIM {order} JNE 123")
    assert order in await talk.text(JASTIPER, "PESANAN jpn25 dikirim")
    assert "Tidak ada pesanan dengan status itu" in await talk.text(JASTIPER, "PESANAN jpn25 menunggu")
    assert "tidak dikenal. Pilihan: menunggu" in await talk.text(JASTIPER, "PESANAN jpn25 terbang")


async def test_limits_and_usage_hints_speak_about_the_right_thing(talk):
    await open_trip(talk)
    await talk(SITI, "JOIN jpn25 | Nama: Siti")
    assert await talk.text(SITI, "PESAN KK1 5000") == "Jumlah harus antara 1 dan 1000."
    assert "PESAN TK2 2" in await talk.text(SITI, "PESAN TK2 dua")
    batal = await talk.text(SITI, "BATAL")
    assert "KONFIRMASI" not in batal
    stop = await talk.text(SITI, "STOP")
    assert "STOP jpn25" in stop and "INFO" not in stop


async def test_reopening_after_the_deadline_says_how_to_move_it(talk):
    await talk(JASTIPER, "TRIP BARU kor26 Korea | 2099-12-31")
    talk.rt.clock.advance(days=365 * 80)
    await talk.rt.services.trips.close_due()
    text = await talk.text(JASTIPER, "BUKA kor26")
    assert "DEADLINE kor26 <waktu baru>" in text and "BUKA kor26" in text


async def test_my_own_slug_again_is_not_called_someone_elses(talk):
    await open_trip(talk)
    assert "milikmu" in await talk.text(JASTIPER, "TRIP BARU jpn25 Lagi | 2099-12-31")
    assert "dipakai trip lain" in await talk.text(RINA, "TRIP BARU jpn25 Punyaku | 2099-12-31")


@pytest.mark.parametrize("choice", ["indonesia", "id", "Bahasa Indonesia", "english", "en", "inggris"])
async def test_language_by_name(talk, choice):
    text = await talk.text(SITI, f"/bahasa {choice}")
    assert text in ("Bahasa diganti ke Bahasa Indonesia.", "Language set to English.")


@pytest.mark.parametrize(("zone", "utc_hour"), [("WIB", 13), ("WITA", 12), ("WIT", 11)])
async def test_deadlines_in_every_indonesian_zone_and_shown_with_their_zone(talk, zone, utc_hour):
    text = await talk.text(JASTIPER, f"TRIP BARU zz{zone.lower()} Zona | 2099-06-01 20:00 {zone}")
    async with talk.rt.db.read() as session:
        trip = await session.scalar(select(Trip).where(Trip.slug == f"zz{zone.lower()}"))
    assert trip.deadline_at.hour == utc_hour
    assert re.search(r"Deadline: \d\d-06-2099 \d\d:00 WIB", text)


async def test_join_shares_what_is_shared_and_what_to_do_next(talk):
    await open_trip(talk)
    text = await talk.text(SITI, "JOIN jpn25 | Nama: Siti")
    assert "dibagikan ke jastiper" in text and "PESAN KK1 1" in text


async def test_after_ordering_the_buyer_knows_how_and_by_when_to_pay(talk):
    await open_trip(talk)
    await talk(SITI, "JOIN jpn25 | Nama: Siti")
    asked = await talk.text(SITI, "PESAN KK1")
    assert "tanyakan langsung ke jastipernya" in asked and "WIB" in asked
    saved = await talk.text(JASTIPER, "PEMBAYARAN jpn25 manual Transfer BCA 1234567890 a.n. Tina")
    assert "BCA 1234567890 a.n. Tina" in saved
    placed = await talk.text(SITI, "PESAN KK1")
    assert "Cara bayar:\nTransfer BCA 1234567890 a.n. Tina" in placed
    assert re.search(r"Bayar sebelum \d\d-11-2026 \d\d:\d\d WIB", placed)
    new_orders = await talk.notices("order_new_owner")
    assert [n["buyer"] for n in new_orders] == ["Siti", "Siti"]  # the jastiper is told who ordered


async def test_the_jastiper_is_told_when_an_order_expires(talk):
    await open_trip(talk)
    await talk(SITI, "JOIN jpn25 | Nama: Siti")
    await talk(SITI, "PESAN KK1 2")
    talk.rt.clock.advance(hours=25)
    assert await talk.rt.services.orders.expire_due() == 1
    (owner,) = await talk.notices("order_expired_owner")
    assert owner["buyer"] == "Siti" and owner["total"] == 300_000


async def test_kirim_and_batal_without_an_order_code_are_answered_by_context(talk):
    await open_trip(talk)
    await talk(SITI, "JOIN jpn25 | Nama: Siti")
    assert "BAYAR <pesanan>" in await talk.text(SITI, "kirim bukti")  # a buyer, not a jastiper
    assert await talk.text(JASTIPER, "KIRIM") == ("Format: KIRIM <pesanan> <kurir dan resi>, contoh: "
                                                 "KIRIM P12 JNE 1234567890")
    order = re.search(r"P\d+", await talk.text(SITI, "PESAN KK1")).group(0)
    choices = await talk(SITI, "BATAL")
    assert labels(choices) == [f"Batalkan pesanan {order}"]
    assert "dibatalkan" in await talk.text(SITI, data=f"ord:cancel:{order}")


async def test_check_offers_the_link_and_history_says_what_each_line_was_for(talk):
    from services.payments import Notification

    link = await talk(JASTIPER, "/topup 50rb", name="Tina")
    code = re.search(r"TT[0-9A-F-]+", link[0].text).group(0)
    checked = await talk(JASTIPER, "/cek", name="Tina")
    assert code in checked[0].text and "/pay/sandbox/" in checked[0].text and "WIB" in checked[0].text
    assert labels(checked) == ["Bayar sekarang"]
    await talk.rt.settlement.apply(Notification(gateway="sandbox", order_id=code, event_key="paid-1", status="paid",
                                                raw_status="paid", amount=50_000), source="callback")
    (credited,) = await talk.notices("payment_credited")
    assert credited["order_id"] == code  # the credit notice names its payment code
    await open_trip(talk)
    await talk(SITI, "JOIN jpn25 | Nama: Siti")
    preview = await talk(JASTIPER, "BROADCAST jpn25 halo semua", name="Tina")
    broadcast_id = preview[0].buttons[0][0].data.split(":")[-1]
    assert "Siaran dikirim" in await talk.text(JASTIPER, data=f"bc:ok:{broadcast_id}", name="Tina")
    history = await talk.text(JASTIPER, "/riwayat", name="Tina")
    assert f"-Rp500 · biaya siaran #{broadcast_id}" in history
    assert f"+Rp50.000 · top up {code}" in history and "pemakaian" not in history


async def test_no_reply_contains_an_internal_word(talk):
    """A whole trip in Indonesian: no status name, channel id or placeholder ever reaches a person."""
    internal = re.compile(r"\b(pending|proof_submitted|confirmed|rejected|shipped|cancelled|expired|done|running|"
                          r"preview|joined|stopped|whatsapp|telegram|None)\b|\{[a-z_]+\}")
    said: list[str] = []

    async def say(user, text="", **kwargs):
        replies = await talk(user, text, **kwargs)
        said.extend(r.text for r in replies)
        return "\n".join(r.text for r in replies)

    await open_trip(talk)
    await say(SITI, "JOIN jpn25 | Nama: Siti")
    await say(WA, "JOIN jpn25 | Nama: Rina", channel="whatsapp")
    first = re.search(r"P\d+", await say(SITI, "PESAN KK1")).group(0)
    second = re.search(r"P\d+", await say(WA, "PESAN KK1 2", channel="whatsapp")).group(0)
    for command in ("PESERTA jpn25", "PESANAN jpn25", f"KONFIRMASI {first}", f"KIRIM {first} JNE 1",
                    f"TOLAK {second} habis", f"KONFIRMASI {second}", "TRIP", "TRIP jpn25", "INFO jpn25",
                    "PESANAN jpn25 dikirim", "REKAP jpn25", "BROADCAST jpn25 Barang tiba"):
        await say(JASTIPER, command)
    await say(SITI, "PESANANKU")
    await say(SITI, f"BATAL {first}")
    bc = await talk(JASTIPER, "BROADCAST jpn25 lagi")
    broadcast_id = bc[0].buttons[0][0].data.split(":")[-1]
    await say(JASTIPER, data=f"bc:no:{broadcast_id}")
    await say(JASTIPER, data=f"bc:no:{broadcast_id}")
    await say(SITI, "/cek")
    await say(SITI, "/riwayat")
    assert len(said) > 20
    for text in said:
        assert not internal.search(text), text


async def test_bad_numbers_get_a_clear_reply_and_change_nothing(talk):
    await talk(JASTIPER, "TRIP BARU jpn25 Jepang | 2099-12-31")
    cases = {
        "PRODUK jpn25 X1 10rb ² Superscript": "Stok \"²\" harus angka biasa",
        "PRODUK jpn25 X2 10rb ١٠ Arabic": "Stok \"١٠\" harus angka biasa",
        "PRODUK jpn25 X3 100000000000000000000 1 Mahal": "paling banyak Rp100.000.000",
        f"PRODUK jpn25 X4 10rb {'9' * 5000} Banyak": "harus angka biasa",
        "PRODUK jpn25 X5 10rb 2000000 Banyak": "Stok harus antara 0 dan 1.000.000.",
    }
    for typed, expected in cases.items():
        assert expected in await talk.text(JASTIPER, typed, name="Tina"), typed
    assert "ditambahkan" in await talk.text(JASTIPER, "PRODUK jpn25 KC 10rb 5 Kecil", name="Tina")
    await talk(SITI, "JOIN jpn25 | Nama: Siti")
    assert "harus angka" in await talk.text(SITI, "PESAN KC ²")
    assert "harus angka" in await talk.text(SITI, f"PESAN KC {'9' * 5000}")
    assert "UBAH" not in await talk.text(JASTIPER, "UBAH KC harga 10²")
    async with talk.rt.db.read() as session:
        products = (await session.scalars(select(Product.code))).all()
        orders = (await session.scalars(select(Order.id))).all()
    assert products == ["KC"] and orders == []


async def test_the_database_enforces_the_bounds_too(talk):
    from services.errors import StorageDataError

    await open_trip(talk)
    with pytest.raises(StorageDataError):
        async with talk.rt.db.write() as session:
            await session.execute(Product.__table__.update().values(stock=1_000_001))
    with pytest.raises(StorageDataError):
        async with talk.rt.db.write() as session:
            await session.execute(Product.__table__.update().values(price=100_000_001))


async def test_a_new_proof_replaces_the_last_and_proofs_are_limited_per_day(talk, tmp_path):
    from PIL import Image

    from tests.support.images import photo_bytes

    await open_trip(talk)
    await talk(SITI, "JOIN jpn25 | Nama: Siti")
    order = re.search(r"P\d+", await talk.text(SITI, "PESAN KK1")).group(0)
    for _ in range(3):
        assert "diterima dan diteruskan" in await talk.text(SITI, f"BAYAR {order}", photo=photo_bytes())
    kept = list((tmp_path / "media" / "proofs").glob("*.jpg"))
    assert len(kept) == 1 and not kept[0].name.startswith(f"{order}.")  # one file, with a random part
    assert not Image.open(kept[0]).getexif()  # no EXIF, no GPS
    assert "Hari ini sudah 3 bukti" in await talk.text(SITI, f"BAYAR {order}", photo=photo_bytes())
    talk.rt.clock.advance(days=1)
    assert "diterima dan diteruskan" in await talk.text(SITI, f"BAYAR {order}", photo=photo_bytes())
    assert len(await talk.notices("order_proof_owner")) == 4
    assert "harus berupa foto" in await talk.text(SITI, f"BAYAR {order}", photo=b"\xff\xd8\xff" + b"x" * 50)


async def test_a_whole_trip_in_english(talk):
    await talk(SITI, "/bahasa en")
    await open_trip(talk)
    text = await talk.text(SITI, "JOIN jpn25 | Nama: Siti")
    assert "You joined Jastip Jepang" in text and "shared with this trip's jastiper" in text
    placed = await talk.text(SITI, "PESAN KK1 9")
    assert placed == "Sorry, not enough KK1 in stock (5 left)."
    placed = await talk.text(SITI, "PESAN KK1 1")
    assert "Order P" in placed and "ask them directly" in placed
    assert (talk.rt.clock.now() + timedelta(hours=24)).strftime("%d-%m-%Y") in placed


async def test_a_bad_row_fails_alone_and_the_rest_of_its_batch_is_handled(talk):
    """Messages arriving together share one write batch: an over-long name, an over-long slug and product
    name and a huge number sit among ordinary messages; every ordinary one is handled, each bad one gets a
    clear reply, and nothing is reported as an outage."""
    import asyncio

    talk.rt.services.inbound.batcher.start()  # the batching writer, as in the running server
    try:
        await open_trip(talk)
        long_name = "Siti\u200b\u202e" + "A" * 300 + "\u0301"
        bad = [
            talk.text(2001, "/saldo", name=long_name),
            talk.text(2002, "TRIP BARU " + "x" * 50 + " Judul | 2099-12-31"),
            talk.text(JASTIPER, "PRODUK jpn25 LONG 10rb 1 " + "Nama panjang " * 60, name="Tina"),
            talk.text(2003, "PESAN KK1 " + "9" * 40),
        ]
        ordinary = [talk.text(3000 + i, "/saldo", name=f"Orang {i}") for i in range(20)]
        replies = await asyncio.gather(*bad, *ordinary)
    finally:
        await talk.rt.services.inbound.batcher.stop()
    assert replies[0] == "Saldo kamu: Rp0. Tambah saldo dengan /topup."
    assert replies[1].startswith("Slug \"xxxxxxxxxxxxxxxxxxxx\" tidak valid")
    assert replies[2].startswith("Produk LONG ditambahkan ke jpn25: Nama panjang")
    assert "harus angka" in replies[3]
    assert all(r == "Saldo kamu: Rp0. Tambah saldo dengan /topup." for r in replies[4:])
    from storage.models import User

    async with talk.rt.db.read() as session:
        name = await session.scalar(select(User.display_name).where(User.external_id == "2001"))
        product = await session.scalar(select(Product.name).where(Product.code == "LONG"))
    assert name.startswith("SitiAAA") and len(name) <= 128 and "\u202e" not in name and "\u200b" not in name
    assert len(product) <= 120


async def test_the_writer_reports_a_refused_row_as_that_rows_failure_only(talk):
    """Below the edge (no cleaning): a value too long for its column fails its own item (PostgreSQL refuses
    it; SQLite stores it), never the others in its batch and never as an outage."""
    import asyncio

    from services.errors import StorageDataError

    inbound = talk.rt.services.inbound
    inbound.batcher.start()
    try:
        results = await asyncio.gather(
            inbound.register(channel="telegram", external_id="bad", display_name="N" * 500, update_key="b1"),
            *(inbound.register(channel="telegram", external_id=f"ok{i}", display_name="Ok",
                               update_key=f"o{i}") for i in range(30)),
            return_exceptions=True)
    finally:
        await inbound.batcher.stop()
    assert all(not isinstance(r, Exception) and r.first_delivery for r in results[1:])
    assert not isinstance(results[0], Exception) or isinstance(results[0], StorageDataError)
    if talk.rt.db.is_sqlite:
        assert not isinstance(results[0], Exception)
    else:
        assert isinstance(results[0], StorageDataError)
