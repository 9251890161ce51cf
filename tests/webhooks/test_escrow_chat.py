"""An otomatis trip in chat (the playground: two people in one browser), every step with its buttons: the
jastiper switches the trip to otomatis; the buyer tops up through the sandbox, pays from the balance after a
"Ya, bayar"; KIRIM; "Sudah diterima" and "Ya, sudah diterima" release the money to the jastiper; a second
order is paid and refused by the jastiper, refunded at once."""

from __future__ import annotations

from tests.support.harness import AppUnderTest
from tests.support.playground import Visitor, button
from tests.support.waiting import wait_for
from tests.webhooks.test_playground import pay_in_sandbox

CONFIG = {"payments": {"gateways": ["sandbox"]}, "escrow": {"fee_bps": 500}}


async def otomatis_trip(v: Visitor) -> None:
    """Tina opens trip jpn25 paid through Titip, with KitKat Matcha at Rp100.000 (5 in stock); Siti joins."""
    await v.ask("tina", "TRIP BARU jpn25 Jastip Jepang | 2099-12-31 20:00", "Trip jpn25 dibuat")
    await v.ask("tina", "PRODUK jpn25 KK1 100rb 5 KitKat Matcha", "Produk KK1 ditambahkan")
    await v.ask("tina", "PEMBAYARAN jpn25 otomatis", "dibayar lewat Titip")
    await v.ask("siti", "JOIN jpn25 | Nama: Siti", "Kamu ikut trip")


async def test_an_otomatis_trip_runs_from_payment_to_release_and_a_refund_in_chat(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, CONFIG) as app, Visitor(app.url) as v:
        await otomatis_trip(v)

        # Not enough balance: the reply says how much is missing and offers exactly that top-up.
        short = await v.ask("siti", "PESAN KK1 1", "kurang Rp100.000")
        await v.tap("siti", button(short, "Tambah saldo Rp100.000"))
        bill = await v.reply_with("siti", "Tagihan top up Rp100.000")
        await pay_in_sandbox(app, button(bill, "Bayar")["url"])
        await v.reply_with("siti", "Saldo bertambah Rp100.000")

        choice = await v.ask("siti", "BAYAR P1", "dari saldo")
        ask = await v.tap_and_wait("siti", button(choice, "Bayar dari saldo"), "Bayar pesanan P1")
        paid = await v.tap_and_wait("siti", button(ask, "Ya, bayar"), "lunas")
        assert "disimpan Titip" in paid["text"]
        await v.reply_with("tina", "Pesanan P1 (Siti) sudah lunas Rp100.000")
        refused = await v.ask("tina", "KONFIRMASI P1", "tanpa KONFIRMASI")
        assert "lunas" in refused["text"]

        await v.ask("tina", "KIRIM P1 JNE 1234567890", "P1 ditandai dikirim")
        shipped = await v.reply_with("siti", "sudah dikirim", "JNE 1234567890")
        later = await v.ask("siti", "BELUMSAMPAI P1", "diundur")
        assert "TERIMA P1" in later["text"]
        await v.reply_with("tina", "bilang pesanan P1 (jpn25) belum sampai")
        again = await v.ask("siti", "belum sampai P1", "sudah pernah diundur")
        assert "KOMPLAIN P1" in again["text"]
        sure = await v.tap_and_wait("siti", button(shipped, "Sudah diterima"), "sudah kamu terima")
        await v.tap_and_wait("siti", button(sure, "Ya, sudah diterima"), "selesai")
        released = await v.reply_with("tina", "Rp95.000 masuk ke penghasilanmu")
        assert "Rp5.000" in released["text"]  # the 5 % fee, computed at release

        # A second order: paid, then refused by the jastiper after a confirmation showing the refund.
        await v.ask("tina", "PRODUK jpn25 TK1 50rb 2 Tokyo Banana", "Produk TK1 ditambahkan")
        bill = await v.ask("siti", "topup 50rb", "Tagihan top up Rp50.000")
        await pay_in_sandbox(app, button(bill, "Bayar")["url"])
        await v.reply_with("siti", "Saldo bertambah Rp50.000")
        choice = await v.ask("siti", "PESAN TK1 1", "Bayar Rp50.000 dari saldo")
        ask = await v.tap_and_wait("siti", button(choice, "dari saldo"), "Bayar pesanan P2")
        await v.tap_and_wait("siti", button(ask, "Ya, bayar"), "P2 lunas")
        confirm = await v.ask("tina", "TOLAK P2 stok habis di toko", "Tolak pesanan P2")
        assert "Rp50.000" in confirm["text"] and "1 × Tokyo Banana" in confirm["text"]
        await v.tap_and_wait("tina", button(confirm, "Ya, tolak"), "dikembalikan ke pembeli")
        await v.reply_with("siti", "P2 ditolak jastiper", "stok habis di toko", "Rp50.000 sudah kembali")
        balance = await v.ask("siti", "saldo", "Saldo kamu")
        assert "Rp50.000" in balance["text"]
        mine = await v.ask("siti", "PESANANKU", "P1")
        assert "diterima" in mine["text"] and "dikembalikan" in mine["text"]
        recap = await v.ask("tina", "REKAP jpn25", "Lewat Titip")
        assert ("Rp0 masih ditahan, Rp95.000 sudah diteruskan ke penghasilanmu (biaya Titip Rp5.000), Rp50.000 "
                "dikembalikan" in recap["text"])
        workbook = await wait_for(lambda: next((m for m in v.replies("tina") if m.get("document", "").endswith(
            ".xlsx")), None))
        import io

        import openpyxl

        sheet = openpyxl.load_workbook(io.BytesIO(await (await v.session.get(app.url + workbook["file"])).read()))
        orders = [row for row in sheet.worksheets[1].iter_rows(values_only=True)]
        assert orders[0][-4:] == ("Di escrow", "Diteruskan", "Biaya Titip", "Dikembalikan")
        by_code = {row[0]: row for row in orders[1:]}
        assert by_code["P1"][-4:] == (0, 95_000, 5_000, 0) and by_code["P2"][-4:] == (0, 0, 0, 50_000)


async def test_an_order_paid_by_link_goes_into_escrow_and_a_late_link_payment_stays_in_the_wallet(
        tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, CONFIG) as app, Visitor(app.url) as v:
        await otomatis_trip(v)

        choice = await v.ask("siti", "PESAN KK1 1", "kurang Rp100.000")
        bill = await v.tap_and_wait("siti", button(choice, "Bayar via link/QRIS"), "Tagihan pesanan P1")
        again = await v.tap_and_wait("siti", button(choice, "Bayar via link/QRIS"), "Tagihan pesanan P1")
        assert button(again, "Bayar")["url"] == button(bill, "Bayar")["url"]  # the order's pending link, reused
        await pay_in_sandbox(app, button(bill, "Bayar")["url"])
        await v.reply_with("siti", "pesanan P1 lunas")
        await v.reply_with("tina", "Pesanan P1 (Siti) sudah lunas Rp100.000")
        assert "Rp0" in (await v.ask("siti", "saldo", "Saldo kamu"))["text"]  # wallet → escrow, nothing left over

        # A link for P2, then P2 cancelled before the money comes: the money stays in the wallet, and Siti is told.
        choice = await v.ask("siti", "PESAN KK1 1", "kurang", "BAYAR P2")
        bill = await v.tap_and_wait("siti", button(choice, "Bayar via link/QRIS"), "Tagihan pesanan P2")
        await v.ask("siti", "BATAL P2", "P2 dibatalkan")
        await pay_in_sandbox(app, button(bill, "Bayar")["url"])
        kept = await v.reply_with("siti", "tidak dipakai untuk pesanan P2")
        assert "sudah kedaluwarsa atau dibatalkan" in kept["text"]
        assert "Rp100.000" in (await v.ask("siti", "saldo", "Saldo kamu"))["text"]


async def test_riwayat_names_order_payments_releases_and_refunds_by_their_order(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, CONFIG) as app, Visitor(app.url) as v:
        await otomatis_trip(v)
        bill = await v.ask("siti", "topup 200rb", "Tagihan top up Rp200.000")
        await pay_in_sandbox(app, button(bill, "Bayar")["url"])
        await v.reply_with("siti", "Saldo bertambah Rp200.000")
        for code in ("P1", "P2"):
            choice = await v.ask("siti", "PESAN KK1 1", "dari saldo")
            ask = await v.tap_and_wait("siti", button(choice, "Bayar dari saldo"), f"Bayar pesanan {code}")
            await v.tap_and_wait("siti", button(ask, "Ya, bayar"), f"{code} lunas")
        cancel = await v.ask("siti", "BATAL P2", "sudah dibayar")
        await v.tap_and_wait("siti", button(cancel, "Ya, batalkan"), "kembali ke saldomu")
        await v.ask("tina", "KIRIM P1 JNE 1", "P1 ditandai dikirim")
        sure = await v.ask("siti", "TERIMA P1", "sudah kamu terima")
        await v.tap_and_wait("siti", button(sure, "Ya, sudah diterima"), "selesai")
        history = (await v.ask("siti", "riwayat", "Transaksi terakhir"))["text"]
        assert "bayar pesanan P1 (disimpan Titip)" in history and "pengembalian dana pesanan P2" in history
        earned = (await v.ask("tina", "riwayat", "Transaksi terakhir"))["text"]
        assert "dana pesanan P1 diteruskan" in earned


async def test_a_complaint_reaches_the_jastiper_and_an_admin_who_splits_the_money(tmp_path, fresh_db_url):
    config = {**CONFIG, "admin": {"telegram_ids": ["9001"]}}
    async with AppUnderTest(tmp_path, fresh_db_url, config) as app, Visitor(app.url) as v:
        await otomatis_trip(v)
        bill = await v.ask("siti", "topup 200rb", "Tagihan top up Rp200.000")
        await pay_in_sandbox(app, button(bill, "Bayar")["url"])
        await v.reply_with("siti", "Saldo bertambah Rp200.000")
        choice = await v.ask("siti", "PESAN KK1 2", "dari saldo")
        ask = await v.tap_and_wait("siti", button(choice, "Bayar dari saldo"), "Bayar pesanan P1")
        await v.tap_and_wait("siti", button(ask, "Ya, bayar"), "P1 lunas")
        await v.ask("tina", "KIRIM P1 JNE 1", "P1 ditandai dikirim")

        usage = await v.ask("siti", "KOMPLAIN P1", "Format: KOMPLAIN")
        assert "contoh" in usage["text"]
        from tests.support.images import photo_bytes

        await v.ask("siti", "KOMPLAIN P1 satu kotak penyok", "Dana Rp200.000 ditahan", photo=photo_bytes())
        told = await v.reply_with("tina", "komplain pesanan P1", "satu kotak penyok")
        assert told.get("photo") and told.get("file")  # the evidence, forwarded with the notice
        dashboard = await v.ask("admin", "ADMIN", "Komplain terbuka: 1")
        assert "Ringkasan" in dashboard["text"]
        listed = await v.ask("admin", "ADMIN KOMPLAIN", "P1 (jpn25)")
        assert "satu kotak penyok" in listed["text"] and "ADMIN KOMPLAIN <pesanan> lepas" in listed["text"]
        done = await v.ask("admin", "ADMIN KOMPLAIN P1 bagi 50rb satu kotak penyok, dikembalikan separuh",
                           "Komplain P1 diputuskan")
        assert "Rp50.000 dikembalikan" in done["text"] and "Rp150.000 dilepas" in done["text"]
        await v.reply_with("siti", "Rp50.000 kembali ke saldomu", "Rp142.500 diteruskan")
        await v.reply_with("tina", "Rp142.500 masuk ke penghasilanmu", "biaya Titip Rp7.500")
        assert "Tidak ada komplain terbuka" in (await v.ask("admin", "ADMIN KOMPLAIN", "komplain"))["text"]
        closed = await v.ask("admin", "ADMIN PERPANJANG P1 7 menunggu kurir", "yang bisa diperpanjang")
        assert "P1" in closed["text"]
        assert "Format: ADMIN PERPANJANG" in (await v.ask("admin", "ADMIN PERPANJANG P1", "Format"))["text"]
        refused = await v.ask("siti", "ADMIN KOMPLAIN", "")
        assert "Komplain" not in refused["text"]  # not an admin: the support hint
        import re

        topup_code = re.search(r"Kode pembayaran: (\S+)", bill["text"]).group(1)
        await v.ask("siti", f"KOMPLAIN {topup_code} saldo masuk dua kali?", "diteruskan ke admin")
        # Admin notices go to the configured admins (here a Telegram id; the playground's Admin persona uses the
        # ADMIN commands but is not sent notices).
        from sqlalchemy import select

        from storage.models import OutboxMessage

        async with app.runtime.db.read() as session:
            alerts = (await session.execute(select(OutboxMessage.chat_id, OutboxMessage.params).where(
                OutboxMessage.template == "admin_payment_complaint"))).all()
        assert [(chat, params["order_id"], params["reason"]) for chat, params in alerts] == [
            ("9001", topup_code, "saldo masuk dua kali?")]
        stranger = await v.ask("rina", f"KOMPLAIN {topup_code} bukan punya saya", "Format: KOMPLAIN")
        assert "contoh" in stranger["text"]


async def test_a_part_refusal_and_a_cancelled_trip_in_chat(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, CONFIG) as app, Visitor(app.url) as v:
        await otomatis_trip(v)
        bill = await v.ask("siti", "topup 500rb", "Tagihan top up Rp500.000")
        await pay_in_sandbox(app, button(bill, "Bayar")["url"])
        await v.reply_with("siti", "Saldo bertambah Rp500.000")
        choice = await v.ask("siti", "PESAN KK1 3", "dari saldo")
        ask = await v.tap_and_wait("siti", button(choice, "Bayar dari saldo"), "Bayar pesanan P1")
        await v.tap_and_wait("siti", button(ask, "Ya, bayar"), "P1 lunas")

        sure = await v.ask("tina", "TOLAK P1 x1 cuma dapat dua", "Tolak 1 dari 3")
        assert "Rp100.000 dikembalikan" in sure["text"]
        await v.tap_and_wait("tina", button(sure, "Ya, tolak 1"), "pesanan sekarang Rp200.000")
        await v.reply_with("siti", "1 barang ditolak (cuma dapat dua)", "Rp100.000 sudah kembali")

        await v.ask("siti", "PESAN KK1 1", "Pesanan P2 dibuat")
        sure = await v.ask("tina", "BATALKAN jpn25 penerbangan dibatalkan", "Batalkan trip")
        kept = await v.tap_and_wait("tina", button(sure, "Tidak"), "tidak dibatalkan")
        assert "jpn25" in kept["text"]
        await v.tap_and_wait("tina", button(sure, "Ya, batalkan trip"), "1 pesanan lunas dikembalikan")
        await v.reply_with("siti", "P1 dibatalkan", "Rp200.000 sudah kembali")
        await v.reply_with("siti", "P2 dibatalkan")
        assert "Rp500.000" in (await v.ask("siti", "saldo", "Saldo kamu"))["text"]


async def test_a_trip_with_a_down_payment_runs_dp_tiba_rest_shipping_and_release_in_chat(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, CONFIG) as app, Visitor(app.url) as v:
        await v.ask("tina", "TRIP BARU jpn25 Jastip Jepang | 2099-12-31 20:00", "Trip jpn25 dibuat")
        await v.ask("tina", "PRODUK jpn25 KK1 100rb 5 KitKat Matcha", "Produk KK1 ditambahkan")
        refused = await v.ask("tina", "DP jpn25 30", "PEMBAYARAN jpn25 otomatis")
        assert "DP hanya untuk trip" in refused["text"]
        await v.ask("tina", "PEMBAYARAN jpn25 otomatis", "dibayar lewat Titip")
        await v.ask("tina", "DP jpn25 30 kembali", "DP 30%", "DP dikembalikan ke pembeli")
        await v.ask("siti", "JOIN jpn25 | Nama: Siti", "Kamu ikut trip")
        bill = await v.ask("siti", "topup 200rb", "Tagihan top up Rp200.000")
        await pay_in_sandbox(app, button(bill, "Bayar")["url"])
        await v.reply_with("siti", "Saldo bertambah Rp200.000")

        choice = await v.ask("siti", "PESAN KK1 2", "dari saldo")
        assert "Bayar Rp60.000" in choice["text"] and "Ini DP Rp60.000 dari total Rp200.000" in choice["text"]
        ask = await v.tap_and_wait("siti", button(choice, "Bayar dari saldo"), "Bayar pesanan P1 sebesar Rp60.000")
        await v.tap_and_wait("siti", button(ask, "Ya, bayar"), "DP Rp60.000 untuk pesanan P1 diterima")
        await v.reply_with("tina", "sudah bayar DP Rp60.000 dari Rp200.000", "TIBA jpn25")
        mine = await v.ask("siti", "PESANANKU", "P1")
        assert "DP dibayar" in mine["text"]

        await v.ask("tina", "TIBA jpn25", "1 pembeli ditagih sisa pembayaran")
        due = await v.reply_with("siti", "sudah tiba", "Rp140.000")
        ask = await v.tap_and_wait("siti", button(due, "Bayar dari saldo"), "Bayar pesanan P1 sebesar Rp140.000")
        await v.tap_and_wait("siti", button(ask, "Ya, bayar"), "Pesanan P1 lunas")
        await v.ask("tina", "KIRIM P1 JNE 9", "P1 ditandai dikirim")
        sure = await v.ask("siti", "TERIMA P1", "sudah kamu terima")
        await v.tap_and_wait("siti", button(sure, "Ya, sudah diterima"), "selesai")
        await v.reply_with("tina", "Rp190.000 masuk ke penghasilanmu", "biaya Titip Rp10.000")


async def test_an_order_above_the_link_limit_says_so_and_offers_the_balance_only(tmp_path, fresh_db_url):
    config = {**CONFIG, "wallet": {"max_topup": 150_000}}
    async with AppUnderTest(tmp_path, fresh_db_url, config) as app, Visitor(app.url) as v:
        await otomatis_trip(v)
        refused = await v.ask("siti", "PESAN KK1 2", "belum bisa dibuat")
        assert "Rp200.000" in refused["text"] and "(Rp150.000)" in refused["text"]
        assert "stok 5" in (await v.ask("siti", "INFO jpn25", "KK1"))["text"]  # nothing was reserved
        small = await v.ask("siti", "PESAN KK1 1", "kurang Rp100.000")
        assert any(b["data"] == "ord:link:P1" for row in small["buttons"] for b in row)
        bill = await v.ask("siti", "topup 150rb", "Tagihan top up Rp150.000")
        await pay_in_sandbox(app, button(bill, "Bayar")["url"])
        await v.reply_with("siti", "Saldo bertambah Rp150.000")
        bill = await v.ask("siti", "topup 100rb", "Tagihan top up Rp100.000")
        await pay_in_sandbox(app, button(bill, "Bayar")["url"])
        await v.reply_with("siti", "Saldo bertambah Rp100.000")
        choice = await v.ask("siti", "PESAN KK1 2", "di atas batas satu pembayaran lewat link (Rp150.000)")
        assert not any(b["data"] and b["data"].startswith("ord:link") for row in choice["buttons"] for b in row)
        assert any(b["data"] == "ord:pay:P2" for row in choice["buttons"] for b in row)
