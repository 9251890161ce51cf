"""A jastip trip run in chat across channels, over real sockets (fake Bot API and Graph API on loopback)."""

from __future__ import annotations

import csv
import io
import itertools
import re

import openpyxl
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy import select

from handlers.trips import parse_deadline, parse_join
from services.errors import UserInputError
from storage.models import Order
from tests.support.harness import AppUnderTest
from tests.support.images import photo_bytes
from tests.support.telegram import telegram_callback_update, telegram_photo_update, telegram_text_update
from tests.support.waiting import wait_for
from tests.support.whatsapp import button_update, image_update, signed, text_update

SECRET = "tg-secret"
JASTIPER, TG_BUYER, WA_BUYER = 1001, 1002, "6281299990000"


def chat_config(bot, graph, **whatsapp) -> dict:
    """Telegram and WhatsApp on the fakes, the sandbox gateway. Many messages to one WhatsApp user in seconds:
    the real 1-per-6-s pacing would only slow the tests down."""
    return {
        "telegram": {"token": bot.token, "mode": "webhook", "webhook_secret": SECRET, "api_base_url": bot.base_url},
        "whatsapp": {**graph.config(), "per_recipient_interval_s": 0.05, **whatsapp},
        "payments": {"gateways": ["sandbox"]},
    }


class Chat:
    """People writing to the app under test: Telegram updates and signed WhatsApp webhooks, ids never reused."""

    def __init__(self, app: AppUnderTest) -> None:
        self._app = app
        self._ids = itertools.count(1)

    def next_id(self) -> int:
        return next(self._ids)

    async def tg_update(self, payload: dict) -> None:
        await self._app.http.post("/telegram/webhook", json=payload,
                                  headers={"X-Telegram-Bot-Api-Secret-Token": SECRET})

    async def tg(self, user: int, text: str) -> None:
        await self.tg_update(telegram_text_update(self.next_id(), user, text))

    async def wa(self, payload: dict) -> None:
        raw, headers = signed(payload)
        await self._app.http.post("/whatsapp/webhook", content=raw, headers=headers)

    async def wa_text(self, text: str) -> None:
        await self.wa(text_update(WA_BUYER, text, f"wamid.j{self.next_id()}"))


async def test_a_trip_runs_across_telegram_and_whatsapp(tmp_path, fresh_db_url, bot, graph):
    config = chat_config(bot, graph, display_number="6281100000000")
    async with AppUnderTest(tmp_path, fresh_db_url, config) as app:
        chat = Chat(app)
        await chat.tg(JASTIPER, "TRIP BARU jpn25 Jastip Jepang Mei | 2099-12-31 20:00")
        created = await wait_for(lambda: next((t for t in bot.texts_to(JASTIPER) if "Trip jpn25 dibuat" in t), None))
        assert "https://t.me/TitipTestBot?start=join_jpn25" in created
        assert "https://wa.me/6281100000000?text=JOIN%20jpn25" in created
        await chat.tg(JASTIPER, "PRODUK jpn25 KK1 150rb 3 KitKat Matcha")
        await wait_for(lambda: any("Produk KK1 ditambahkan" in t for t in bot.texts_to(JASTIPER)))
        added = next(c.params for c in bot.calls if "Produk KK1 ditambahkan" in c.params.get("text", ""))
        assert bot.keyboard(added)[0][0]["callback_data"] == "ann:jpn25:KK1"

        await chat.wa_text("join JPN25 |nama:Siti")
        await wait_for(lambda: any("Kamu ikut trip Jastip Jepang Mei" in t and "KK1 — KitKat Matcha: Rp150.000 (stok 3)"
                                   in t for t in graph.texts_to(WA_BUYER)))
        await chat.wa_text("JOIN jpn25 | Nama: Siti")  # a double tap changes nothing
        await wait_for(lambda: any("sudah terdaftar" in t for t in graph.texts_to(WA_BUYER)))
        await chat.tg(TG_BUYER, "/start join_jpn25")
        await wait_for(lambda: any("Kamu ikut trip" in t for t in bot.texts_to(TG_BUYER)))

        await chat.wa_text("PESAN KK1 2")
        placed = await wait_for(lambda: next((t for t in graph.texts_to(WA_BUYER) if "Pesanan P" in t), None))
        wa_order = re.search(r"P\d+", placed).group(0)
        assert "2 × KitKat Matcha = Rp300.000" in placed
        await chat.tg(TG_BUYER, "PESAN KK1 2")
        await wait_for(lambda: any("stok KK1 tidak cukup (sisa 1)" in t for t in bot.texts_to(TG_BUYER)))
        await chat.tg(TG_BUYER, "/pesan kk1")
        placed_tg = await wait_for(lambda: next((t for t in bot.texts_to(TG_BUYER) if "Pesanan P" in t), None))
        tg_order = re.search(r"P\d+", placed_tg).group(0)
        await wait_for(lambda: sum("Pesanan baru" in t for t in bot.texts_to(JASTIPER)) == 2)

        await chat.tg(TG_BUYER, f"KONFIRMASI {wa_order}")  # not the owner
        await wait_for(lambda: any("hanya pemilik trip jpn25" in t for t in bot.texts_to(TG_BUYER)))
        await chat.tg(JASTIPER, f"KONFIRMASI {wa_order}")
        await wait_for(lambda: any(f"Pesanan {wa_order} (Rp300.000) dikonfirmasi" in t
                                   for t in graph.texts_to(WA_BUYER)))
        await chat.tg(JASTIPER, f"TOLAK {tg_order} stok di toko habis")
        await wait_for(lambda: any("Alasan: stok di toko habis" in t for t in bot.texts_to(TG_BUYER)))

        await chat.tg(JASTIPER, "PESERTA jpn25")
        people = await wait_for(lambda: next((t for t in bot.texts_to(JASTIPER) if "Peserta jpn25 (2)" in t), None))
        assert "Siti — WhatsApp +6281299990000 — aktif" in people and "(whatsapp)" not in people
        await chat.tg(JASTIPER, "INFO jpn25")
        await wait_for(lambda: any("stok 1" in t for t in bot.texts_to(JASTIPER)))  # the rejected unit came back
        await chat.wa_text("PESANANKU")
        await wait_for(lambda: any("Pesananmu:" in t and "lunas" in t for t in graph.texts_to(WA_BUYER)))

        await chat.tg(JASTIPER, "REKAP jpn25")
        await wait_for(lambda: len(bot.files) == 3)
        files = {name: content for _, name, content in bot.files}
        assert files["rekap-jpn25-peserta.csv"].startswith("\ufeff".encode())  # UTF-8 BOM for Excel
        people = list(csv.reader(io.StringIO(files["rekap-jpn25-peserta.csv"].decode("utf-8-sig"))))
        assert people == [["Pembeli", "Kontak", "Barang", "Jumlah", "Total (Rp)", "Sudah dibayar (Rp)",
                           "Belum dibayar (Rp)", "Status"],
                          ["Siti", "https://wa.me/6281299990000", "KK1×2", "2", "300000", "300000", "0",
                           "lunas"],
                          ["TOTAL", "", "", "2", "300000", "300000", "0", ""]]
        products = list(csv.reader(io.StringIO(files["rekap-jpn25-produk.csv"].decode("utf-8-sig"))))
        assert products[1] == ["KK1", "KitKat Matcha", "150000", "2", "300000", "1"]
        book = openpyxl.load_workbook(io.BytesIO(files["rekap-jpn25.xlsx"]))
        assert book.sheetnames == ["Peserta", "Pesanan", "Produk"]
        assert [c.value for c in book["Peserta"][2]] == ["Siti", "https://wa.me/6281299990000", "KK1×2", 2, 300000,
                                                         300000, 0, "lunas"]
        assert [c.value for c in book["Produk"][2]][:5] == ["KK1", "KitKat Matcha", 150000, 2, 300000]
        assert any("Rekap jpn25: 1 peserta, 1 pesanan aktif, total Rp300.000 — sudah dibayar Rp300.000, "
                   "belum dibayar Rp0." in t for t in bot.texts_to(JASTIPER))

        await chat.tg_update(telegram_callback_update(chat.next_id(), JASTIPER, "ann:jpn25:KK1"))
        preview = await wait_for(lambda: next((c.params for c in bot.calls if c.method == "sendMessage"
                                               and "Pratinjau siaran" in c.params.get("text", "")), None))
        assert "2 penerima × Rp500 = Rp1.000" in preview["text"] and "Saldo kamu: Rp0" in preview["text"]
        assert "Produk baru: KitKat Matcha" in preview["text"]  # the message itself is shown before sending
        confirm = bot.keyboard(preview)[0][0]
        assert confirm["text"] == "Kirim siaran"
        await chat.tg_update(telegram_callback_update(chat.next_id(), JASTIPER, confirm["callback_data"]))
        await wait_for(lambda: any("Saldo tidak cukup untuk siaran ini: saldo Rp0, dibutuhkan Rp1.000." in t
                                   for t in bot.texts_to(JASTIPER)))
        await chat.tg(JASTIPER, "BROADCAST jpn25 Barang sudah dibeli!")
        await wait_for(lambda: sum("Pratinjau siaran" in t for t in bot.texts_to(JASTIPER)) == 2)


@pytest.mark.parametrize(
    ("text", "slug", "name"),
    [("jpn25 | Nama: Siti", "jpn25", "Siti"), ("JPN25|nama:Siti Aminah", "JPN25", "Siti Aminah"),
     ("  jpn25   |   NAMA :  Budi  ", "jpn25", "Budi"), ("jpn25", "jpn25", None),
     ("kr-26 | name = Ann", "kr-26", "Ann")],
)
def test_join_lines_as_people_write_them(text, slug, name):
    assert parse_join(text) == (slug, name)


@given(st.text(max_size=80))
def test_no_join_line_crashes_the_parser(text):
    try:
        slug, _ = parse_join(text)
    except UserInputError:
        return
    assert 3 <= len(slug) <= 10


@given(st.from_regex(r"[A-Za-z0-9_-]{3,10}", fullmatch=True),
       st.from_regex(r"[A-Za-z][A-Za-z ]{0,20}[A-Za-z]", fullmatch=True))
def test_join_lines_round_trip(slug, name):
    assert parse_join(f"{slug} | Nama: {name}") == (slug, name)


def test_deadlines_are_read_in_jakarta_time():
    assert parse_deadline("2026-12-31 20:00").isoformat() == "2026-12-31T20:00:00+07:00"
    assert parse_deadline("31/12/2026").isoformat() == "2026-12-31T23:59:00+07:00"
    with pytest.raises(UserInputError):
        parse_deadline("besok sore")


JPEG = photo_bytes()


async def test_payment_proofs_cross_channels_both_ways_with_confirm_and_reject_buttons(tmp_path, fresh_db_url, bot,
                                                                                       graph):
    config = chat_config(bot, graph)
    async with AppUnderTest(tmp_path, fresh_db_url, config) as app:
        chat = Chat(app)
        # Trip 1: a Telegram jastiper, a WhatsApp buyer.
        await chat.tg(JASTIPER, "TRIP BARU jpn25 Jepang | 2099-12-31 20:00")
        await chat.tg(JASTIPER, "PRODUK jpn25 KK1 150rb 5 KitKat")
        await wait_for(lambda: any("Produk KK1" in t for t in bot.texts_to(JASTIPER)))
        await chat.wa(text_update(WA_BUYER, "JOIN jpn25 | Nama: Siti", "wamid.p1"))
        await chat.wa(text_update(WA_BUYER, "PESAN KK1", "wamid.p2"))
        placed = await wait_for(lambda: next((t for t in graph.texts_to(WA_BUYER) if "Pesanan P" in t), None))
        order = re.search(r"P\d+", placed).group(0)

        graph.stored_media["img-bad"] = b"GIF89a not a proof"
        await chat.wa(image_update(WA_BUYER, "img-bad", f"BAYAR {order}", "wamid.p3"))
        await wait_for(lambda: any("harus berupa foto JPEG" in t for t in graph.texts_to(WA_BUYER)))
        graph.stored_media["img-ok"] = JPEG
        await chat.wa(image_update(WA_BUYER, "img-ok", f"bayar {order}", "wamid.p4"))
        await wait_for(lambda: any(f"Bukti bayar untuk {order}" in t for t in graph.texts_to(WA_BUYER)))
        forwarded = await wait_for(lambda: next((c.params for c in bot.calls if c.method == "sendPhoto"), None))
        assert f"Bukti bayar {order} dari Siti" in forwarded["caption"]
        buttons = bot.keyboard(forwarded)[0]
        assert [(b["text"], b["callback_data"]) for b in buttons] == [("Bukti sah", f"ord:ok:{order}"),
                                                                        ("Bukti tidak sah", f"ord:no:{order}")]
        assert list((tmp_path / "media" / "proofs").glob(f"{order}-*.jpg"))
        await chat.tg_update(telegram_callback_update(chat.next_id(), JASTIPER, buttons[0]["callback_data"]))
        await wait_for(lambda: any(f"Pesanan {order} (Rp150.000) dikonfirmasi" in t for t in graph.texts_to(WA_BUYER)))

        # Trip 2: a WhatsApp jastiper, a Telegram buyer.
        await chat.wa(text_update(WA_BUYER, "TRIP BARU kr26 Korea | 2099-12-31 20:00", "wamid.q1"))
        await chat.wa(text_update(WA_BUYER, "PRODUK kr26 TT1 80rb 5 Toner", "wamid.q2"))
        await wait_for(lambda: any("Produk TT1" in t for t in graph.texts_to(WA_BUYER)))
        await chat.tg(TG_BUYER, "JOIN kr26 | Nama: Budi")
        await chat.tg(TG_BUYER, "PESAN TT1")
        placed = await wait_for(lambda: next((t for t in bot.texts_to(TG_BUYER) if "Pesanan P" in t), None))
        order2 = re.search(r"P\d+", placed).group(0)
        bot.stored_files["huge"] = b"\xff\xd8\xff" + b"0" * 10
        await chat.tg_update(telegram_photo_update(chat.next_id(), TG_BUYER, "huge", 6_000_000,
                                                                          f"BAYAR {order2}"))
        await wait_for(lambda: any("terlalu besar" in t for t in bot.texts_to(TG_BUYER)))
        bot.stored_files["proof2"] = JPEG
        await chat.tg_update(telegram_photo_update(chat.next_id(), TG_BUYER, "proof2", len(JPEG),
                                                                          f"BAYAR {order2}"))
        await wait_for(lambda: any(f"Bukti bayar untuk {order2}" in t for t in bot.texts_to(TG_BUYER)))
        # On WhatsApp the proof is one interactive message: the photo with its two buttons.
        proof = await wait_for(lambda: next((m for m in graph.messages if m.get("type") == "interactive"
                                             and m["interactive"].get("header", {}).get("type") == "image"
                                             and order2 in m["interactive"]["body"]["text"]), None))
        assert [b["reply"]["id"] for b in proof["interactive"]["action"]["buttons"]] == [f"ord:ok:{order2}",
                                                                                       f"ord:no:{order2}"]
        await chat.wa(button_update(WA_BUYER, f"ord:no:{order2}", "Bukti tidak sah", "wamid.q3"))
        await wait_for(lambda: any(f"Kenapa bukti pesanan {order2} tidak sah" in t for t in graph.texts_to(WA_BUYER)))
        await chat.wa(button_update(WA_BUYER, f"ord:no:{order2}:proof_reason_amount", "nominal", "wamid.q4"))
        # A proof that is not valid does not reject the order: the buyer is asked for a new proof, with the reason.
        await wait_for(lambda: any(f"Bukti bayar untuk pesanan {order2}" in t and "nominalnya tidak sesuai" in t
                                   for t in bot.texts_to(TG_BUYER)))
        async with app.runtime.db.read() as session:
            assert await session.scalar(select(Order.status).where(Order.id == int(order2[1:]))) == "pending"


async def test_a_product_photo_is_kept_and_shown_on_info(tmp_path, fresh_db_url, bot, graph):
    config = chat_config(bot, graph)
    async with AppUnderTest(tmp_path, fresh_db_url, config) as app:
        chat = Chat(app)
        await chat.tg_update(telegram_text_update(1, JASTIPER, "TRIP BARU jpn25 Jepang | 2099-12-31"))
        await wait_for(lambda: any("Trip jpn25 dibuat" in t for t in bot.texts_to(JASTIPER)))
        bot.stored_files["notimg"] = b"%PDF-1.4 not a photo"
        await chat.tg_update(telegram_photo_update(2, JASTIPER, "notimg", 20,
                                                                          "PRODUK jpn25 KK0 10rb 1 Salah"))
        await wait_for(lambda: any("harus berupa foto JPEG" in t for t in bot.texts_to(JASTIPER)))
        bot.stored_files["kitkat"] = JPEG
        await chat.tg_update(telegram_photo_update(3, JASTIPER, "kitkat", len(JPEG),
                                                                          "PRODUK jpn25 KK1 150rb 3 KitKat"))
        await wait_for(lambda: any("Produk KK1 ditambahkan" in t for t in bot.texts_to(JASTIPER)))
        stored = list((tmp_path / "media" / "products").glob("jpn25-*.jpg"))
        assert len(stored) == 1
        kept = Image.open(io.BytesIO(stored[0].read_bytes()))
        assert kept.format == "JPEG" and kept.size == (64, 48) and not kept.getexif()  # re-encoded, no GPS

        await chat.wa(text_update(WA_BUYER, "INFO jpn25", "wamid.i1"))
        image = await wait_for(lambda: next((m for m in graph.messages if m.get("type") == "image"), None))
        assert "KK1 — KitKat: Rp150.000 (stok 3)" in image["image"]["caption"]
        assert not any("KK0" in t for t in graph.texts_to(WA_BUYER))


async def test_a_photo_answering_the_order_message_is_that_orders_proof_on_both_channels(tmp_path, fresh_db_url,
                                                                                          bot, graph):
    config = chat_config(bot, graph)
    async with AppUnderTest(tmp_path, fresh_db_url, config) as app:
        chat = Chat(app)
        await chat.tg(JASTIPER, "TRIP BARU jpn25 Jepang | 2099-12-31 20:00")
        await chat.tg_update(telegram_text_update(chat.next_id(), JASTIPER, "PRODUK jpn25 KK1 150rb 5 KitKat"))
        await wait_for(lambda: any("Produk KK1" in t for t in bot.texts_to(JASTIPER)))

        # Telegram: the buyer answers the order message with a bare photo.
        await chat.tg_update(telegram_text_update(chat.next_id(), TG_BUYER, "JOIN jpn25 | Nama: Budi"))
        await chat.tg_update(telegram_text_update(chat.next_id(), TG_BUYER, "PESAN KK1"))
        placed = await wait_for(lambda: next((c.params for c in bot.calls if c.method == "sendMessage"
                                              and str(c.params["chat_id"]) == str(TG_BUYER)
                                              and "Pesanan P" in c.params["text"]), None))
        assert "balas pesan ini dengan foto" in placed["text"]
        order = re.search(r"P\d+", placed["text"]).group(0)
        bot.stored_files["tgproof"] = JPEG
        await chat.tg_update(telegram_photo_update(chat.next_id(), TG_BUYER, "tgproof", len(JPEG), "", reply_to=9999))
        await wait_for(lambda: any("balas pesan pesananmu dengan foto" in t for t in bot.texts_to(TG_BUYER)))
        await chat.tg_update(telegram_photo_update(chat.next_id(), TG_BUYER, "tgproof", len(JPEG), "",
                                       reply_to=placed["_message_id"]))
        await wait_for(lambda: any(f"Bukti bayar untuk {order}" in t for t in bot.texts_to(TG_BUYER)))
        await wait_for(lambda: any(f"Bukti bayar {order} dari Budi" in str(c.params.get("caption"))
                                   for c in bot.calls if c.method == "sendPhoto"))

        # WhatsApp: the buyer quotes the order message with an image.
        await chat.wa(text_update(WA_BUYER, "JOIN jpn25 | Nama: Siti", "wamid.r1"))
        await chat.wa(text_update(WA_BUYER, "PESAN KK1", "wamid.r2"))
        placed_wa = await wait_for(lambda: next((m for m in graph.messages if m.get("to") == WA_BUYER
                                                 and "Pesanan P" in str(m.get("text", {}).get("body"))), None))
        order_wa = re.search(r"P\d+", placed_wa["text"]["body"]).group(0)
        graph.stored_media["waproof"] = JPEG
        await chat.wa(image_update(WA_BUYER, "waproof", "", "wamid.r3", quoted=placed_wa["_wamid"]))
        await wait_for(lambda: any(f"Bukti bayar untuk {order_wa}" in t for t in graph.texts_to(WA_BUYER)))
        await wait_for(lambda: any(f"Bukti bayar {order_wa} dari Siti" in str(c.params.get("caption"))
                                   for c in bot.calls if c.method == "sendPhoto"))
        async with app.runtime.db.read() as session:
            states = {f"P{i}": status for i, status in (await session.execute(select(Order.id, Order.status))).all()}
        assert states == {order: "proof_submitted", order_wa: "proof_submitted"}


async def test_an_otomatis_order_is_paid_shipped_and_released_between_telegram_and_whatsapp(
        tmp_path, fresh_db_url, bot, graph):
    from services import ledger

    async with AppUnderTest(tmp_path, fresh_db_url, chat_config(bot, graph)) as app:
        chat = Chat(app)
        await chat.tg(JASTIPER, "TRIP BARU oto01 Jastip Otomatis | 2099-12-31 20:00")
        await chat.tg(JASTIPER, "PRODUK oto01 KK1 100rb 3 KitKat Matcha")
        await chat.tg(JASTIPER, "PEMBAYARAN oto01 otomatis")
        await wait_for(lambda: any("dibayar lewat Titip" in t for t in bot.texts_to(JASTIPER)))
        await chat.wa_text("JOIN oto01 | Nama: Siti")
        await wait_for(lambda: any("Kamu ikut trip" in t for t in graph.texts_to(WA_BUYER)))
        buyer = (await app.runtime.services.inbound.register(
            channel="whatsapp", external_id=WA_BUYER, display_name="Siti", update_key=None)).user.id
        async with app.runtime.db.write() as session:  # money in Siti's wallet, as a top-up leaves it
            await ledger.post(session, [ledger.Move("test-fund", ledger.ADJUSTMENT, ledger.wallet(buyer), 150_000,
                                                    "adjust")], app.runtime.clock.now())

        await chat.wa_text("PESAN KK1 1")
        choice = await wait_for(lambda: next((m for m in graph.messages if m.get("type") == "interactive"
                                              and "dari saldo" in m["interactive"]["body"]["text"]), None))
        buttons = choice["interactive"]["action"]["buttons"]  # reply buttons: wallet and link, no URL mixed in
        assert [b["reply"]["id"] for b in buttons] == ["ord:pay:P1", "ord:link:P1"]
        await chat.wa(button_update(WA_BUYER, "ord:pay:P1", "Bayar", f"wamid.o{chat.next_id()}"))
        await wait_for(lambda: any("Bayar pesanan P1" in t for t in graph.texts_to(WA_BUYER)))
        await chat.wa(button_update(WA_BUYER, "ord:payok:P1", "Ya, bayar", f"wamid.o{chat.next_id()}"))
        await wait_for(lambda: any("Pesanan P1 lunas" in t for t in graph.texts_to(WA_BUYER)))
        await wait_for(lambda: any("P1 (Siti) sudah lunas Rp100.000" in t for t in bot.texts_to(JASTIPER)))

        await chat.tg(JASTIPER, "KIRIM P1 JNE 777")
        shipped = await wait_for(lambda: next((m for m in graph.messages if m.get("type") == "interactive"
                                               and "JNE 777" in m["interactive"]["body"]["text"]), None))
        tap = shipped["interactive"]["action"]["buttons"][0]["reply"]
        assert tap == {"id": "ord:recv:P1", "title": "Sudah diterima"}
        await chat.wa(button_update(WA_BUYER, tap["id"], tap["title"], f"wamid.o{chat.next_id()}"))
        await wait_for(lambda: any("sudah kamu terima" in t for t in graph.texts_to(WA_BUYER)))
        await chat.wa(button_update(WA_BUYER, "ord:recvok:P1", "Ya, sudah diterima", f"wamid.o{chat.next_id()}"))
        await wait_for(lambda: any("Rp100.000 masuk ke penghasilanmu" in t for t in bot.texts_to(JASTIPER)))
        await chat.tg(JASTIPER, "SALDO")
        await wait_for(lambda: any("Penghasilan dari pesanan yang sudah diterima pembeli: Rp100.000" in t
                                   for t in bot.texts_to(JASTIPER)))


async def test_the_shipping_notice_goes_as_its_template_when_the_buyer_wrote_days_ago(
        tmp_path, fresh_db_url, bot, graph):
    from datetime import timedelta

    from sqlalchemy import update

    from services import ledger
    from storage.models import User

    config = chat_config(bot, graph, templates={"order_shipped_escrow": "pesanan_dikirim_dana_ditahan"})
    async with AppUnderTest(tmp_path, fresh_db_url, config) as app:
        chat = Chat(app)
        await chat.tg(JASTIPER, "TRIP BARU oto02 Jastip Otomatis | 2099-12-31 20:00")
        await chat.tg(JASTIPER, "PRODUK oto02 KK1 100rb 3 KitKat Matcha")
        await chat.tg(JASTIPER, "PEMBAYARAN oto02 otomatis")
        await wait_for(lambda: any("dibayar lewat Titip" in t for t in bot.texts_to(JASTIPER)))
        await chat.wa_text("JOIN oto02 | Nama: Siti")
        await wait_for(lambda: any("Kamu ikut trip" in t for t in graph.texts_to(WA_BUYER)))
        buyer = (await app.runtime.services.inbound.register(
            channel="whatsapp", external_id=WA_BUYER, display_name="Siti", update_key=None)).user.id
        async with app.runtime.db.write() as session:
            await ledger.post(session, [ledger.Move("test-fund", ledger.ADJUSTMENT, ledger.wallet(buyer), 100_000,
                                                    "adjust")], app.runtime.clock.now())
        await chat.wa_text("PESAN KK1 1")
        await wait_for(lambda: any("dari saldo" in t for t in graph.texts_to(WA_BUYER)))
        await chat.wa(button_update(WA_BUYER, "ord:payok:P1", "Ya, bayar", f"wamid.o{chat.next_id()}"))
        await wait_for(lambda: any("Pesanan P1 lunas" in t for t in graph.texts_to(WA_BUYER)))
        async with app.runtime.db.write() as session:  # Siti last wrote three days ago: the window is closed
            await session.execute(update(User).where(User.id == buyer).values(
                last_inbound_at=app.runtime.clock.now() - timedelta(days=3)))
        await chat.tg(JASTIPER, "KIRIM P1 JNE 777")
        await wait_for(lambda: "template:pesanan_dikirim_dana_ditahan" in graph.texts_to(WA_BUYER))
        template = next(m for m in graph.messages if m.get("type") == "template")["template"]
        values = [p["text"] for p in template["components"][0]["parameters"]]
        assert values[:4] == ["P1", "oto02", "Rp100.000", "JNE 777"] and values[4].endswith("WIB")


async def test_a_down_payment_order_between_telegram_and_whatsapp(tmp_path, fresh_db_url, bot, graph):
    from services import ledger

    async with AppUnderTest(tmp_path, fresh_db_url, chat_config(bot, graph)) as app:
        chat = Chat(app)
        await chat.tg(JASTIPER, "TRIP BARU oto03 Jastip DP | 2099-12-31 20:00")
        await chat.tg(JASTIPER, "PRODUK oto03 KK1 100rb 3 KitKat Matcha")
        await chat.tg(JASTIPER, "PEMBAYARAN oto03 otomatis")
        await chat.tg(JASTIPER, "DP oto03 40 hangus")
        await wait_for(lambda: any("DP 40%" in t and "DP hangus" in t for t in bot.texts_to(JASTIPER)))
        await chat.wa_text("JOIN oto03 | Nama: Siti")
        await wait_for(lambda: any("Kamu ikut trip" in t for t in graph.texts_to(WA_BUYER)))
        buyer = (await app.runtime.services.inbound.register(
            channel="whatsapp", external_id=WA_BUYER, display_name="Siti", update_key=None)).user.id
        async with app.runtime.db.write() as session:
            await ledger.post(session, [ledger.Move("test-fund", ledger.ADJUSTMENT, ledger.wallet(buyer), 100_000,
                                                    "adjust")], app.runtime.clock.now())
        await chat.wa_text("PESAN KK1 1")
        await wait_for(lambda: any("Ini DP Rp40.000 dari total Rp100.000" in t for t in graph.texts_to(WA_BUYER)))
        await chat.wa(button_update(WA_BUYER, "ord:payok:P1", "Ya, bayar", f"wamid.d{chat.next_id()}"))
        await wait_for(lambda: any("DP Rp40.000 untuk pesanan P1 diterima" in t for t in graph.texts_to(WA_BUYER)))
        await wait_for(lambda: any("bayar DP Rp40.000 dari Rp100.000" in t for t in bot.texts_to(JASTIPER)))
        await chat.tg(JASTIPER, "TIBA oto03")
        due = await wait_for(lambda: next((m for m in graph.messages if m.get("type") == "interactive"
                                           and "sudah tiba" in m["interactive"]["body"]["text"]), None))
        assert "Rp60.000" in due["interactive"]["body"]["text"]
        assert [b["reply"]["id"] for b in due["interactive"]["action"]["buttons"]] == ["ord:pay:P1", "ord:link:P1"]
        await chat.wa(button_update(WA_BUYER, "ord:payok:P1", "Ya, bayar", f"wamid.d{chat.next_id()}"))
        await wait_for(lambda: any("Pesanan P1 lunas" in t for t in graph.texts_to(WA_BUYER)))
        await chat.tg(JASTIPER, "KIRIM P1 JNE 1")
        await wait_for(lambda: any("JNE 1" in t for t in graph.texts_to(WA_BUYER)))
        await chat.wa(button_update(WA_BUYER, "ord:recvok:P1", "Ya, sudah diterima", f"wamid.d{chat.next_id()}"))
        await wait_for(lambda: any("Rp100.000 masuk ke penghasilanmu" in t for t in bot.texts_to(JASTIPER)))
