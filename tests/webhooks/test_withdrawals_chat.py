"""A withdrawal in chat, as people do it in the playground: Tina earns from an otomatis order, registers her bank
account with "Ya, simpan rekening", is verified by the Admin persona, withdraws everything with "Ya, tarik …";
the sandbox provider's page completes it and the notice arrives live. Siti, who only topped up, cannot withdraw;
an admin approves a large withdrawal; the forged and the unparseable payout callbacks are refused."""

from __future__ import annotations

from services.payments.sandbox import sign
from tests.support.harness import AppUnderTest
from tests.support.playground import Visitor, button
from tests.support.waiting import wait_for
from tests.webhooks.test_escrow_chat import otomatis_trip
from tests.webhooks.test_playground import pay_in_sandbox

CONFIG = {"payments": {"gateways": ["sandbox"], "sandbox": {"secret": "sandbox-test-secret"}},
          "payouts": {"provider": "sandbox", "new_account_hold_hours": 0, "approval_above": 150_000}}


async def earn_from_an_order(app: AppUnderTest, v: Visitor, product: str = "KK1", amount: str = "Rp100.000") -> None:
    """Siti tops up, orders `product` on Tina's otomatis trip, pays from her balance, receives it: Tina earns it."""
    bill = await v.ask("siti", f"topup {amount.removeprefix('Rp').replace('.', '')}", "Tagihan top up")
    await pay_in_sandbox(app, button(bill, "Bayar")["url"])
    await v.reply_with("siti", "Saldo bertambah")
    choice = await v.ask("siti", f"PESAN {product} 1", "dari saldo")
    ask = await v.tap_and_wait("siti", button(choice, "dari saldo"), "Bayar pesanan P1")
    await v.tap_and_wait("siti", button(ask, "Ya, bayar"), "lunas")
    await v.ask("tina", "KIRIM P1 JNE 1234567890", "P1 ditandai dikirim")
    sure = await v.ask("siti", "TERIMA P1", "sudah kamu terima")
    await v.tap_and_wait("siti", button(sure, "Ya, sudah diterima"), "selesai")
    await v.reply_with("tina", f"{amount} masuk ke penghasilanmu")


async def sandbox_page_press(app: AppUnderTest, url: str, label: str) -> str:
    """What a tester does on the sandbox payout page: open it, press the outcome's button."""
    path = url.removeprefix(app.url)
    page = await app.http.get(path)
    assert page.status_code == 200 and label in page.text
    outcome = {"Transfer berhasil": "completed", "Transfer gagal": "failed", "Saldo penyedia habis": "no_funds",
               "Dikembalikan bank": "reversed"}[label]
    done = await app.http.post(path, data={"outcome": outcome})
    assert done.status_code == 200
    return done.text


async def test_a_verified_jastiper_registers_an_account_and_withdraws_in_the_playground(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, CONFIG) as app, Visitor(app.url) as v:
        await otomatis_trip(v)
        await earn_from_an_order(app, v)

        first = await v.ask("tina", "TARIK 50rb", "sudah diperiksa admin")
        assert "CS" in first["text"]
        bad = await v.ask("tina", "REKENING bcaa 1234567890 a.n. Tina", "belum kami kenal")
        assert "mandiri" in bad["text"]
        ask = await v.ask("tina", "REKENING bca 1234-5678-90 a.n. Tina Jastip", "Simpan rekening ini")
        assert "****7890" in ask["text"] and "1234567890" not in ask["text"]
        assert "diverifikasi admin" in ask["text"]  # not verified yet: told before anything else
        await v.tap_and_wait("tina", button(ask, "Ya, simpan rekening"), "Rekening disimpan", "BCA ****7890")
        await v.reply_with("tina", "Rekening penarikanmu diganti")  # the change is announced (a notice)

        await v.ask("tina", "PROFIL tinajastip", "tinajastip")
        await v.ask("admin", "ADMIN VERIFIKASI @tinajastip KTP dicek lewat video call", "Tina")

        quote = await v.ask("tina", "TARIK semua", "Tarik Rp100.000 ke BCA ****7890")
        requested = await v.tap_and_wait("tina", button(quote, "Ya, tarik Rp100.000"), "sedang diproses")
        page = button(requested, "halaman sandbox")["url"]
        await wait_for(lambda: _status_shown(app, page, "diproses bank"))  # the payouts job sent it
        await sandbox_page_press(app, page, "Transfer berhasil")
        await v.reply_with("tina", "Penarikan #1 sebesar Rp100.000 sudah dikirim ke BCA ****7890")
        history = await v.ask("tina", "RIWAYAT", "Penarikan")
        assert "#1 Rp100.000 → BCA ****7890: terkirim" in history["text"]
        again = await v.tap_and_wait("tina", button(quote, "Ya, tarik Rp100.000"), "#1")  # a second tap: the same
        assert "sedang diproses" in again["text"]
        saldo = await v.ask("tina", "SALDO", "Saldo")
        assert "Rp0" in saldo["text"]

        # Siti only topped up: nothing of hers is withdrawable, and she is told why.
        await v.ask("siti", "topup 50rb", "Tagihan top up")
        told = await v.ask("siti", "TARIK 50rb", "top up tidak bisa ditarik")
        assert "sudah diperiksa admin" in told["text"]


async def _status_shown(app: AppUnderTest, url: str, words: str) -> bool:
    return words in (await app.http.get(url.removeprefix(app.url))).text


async def test_a_large_withdrawal_waits_for_the_admins_approval_in_chat(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, CONFIG) as app, Visitor(app.url) as v:
        await otomatis_trip(v)
        await v.ask("tina", "PRODUK jpn25 BG1 200rb 1 Tas", "Produk BG1 ditambahkan")
        await earn_from_an_order(app, v, "BG1", "Rp200.000")
        await v.ask("tina", "PROFIL tinajastip", "tinajastip")
        await v.ask("admin", "ADMIN VERIFIKASI @tinajastip KTP dicek", "Tina")
        ask = await v.ask("tina", "REKENING dana 0812 3456 7890 an Tina Jastip", "Simpan rekening ini")
        await v.tap_and_wait("tina", button(ask, "Ya, simpan rekening"), "DANA ****7890")

        quote = await v.ask("tina", "TARIK 200rb", "Tarik Rp200.000")
        await v.tap_and_wait("tina", button(quote, "Ya, tarik"), "menunggu persetujuan admin")
        listed = await v.ask("admin", "ADMIN PENARIKAN", "#1 Rp200.000")
        why = await v.tap_and_wait("admin", button(listed, "Jangan setujui"), "Tulis alasannya")
        assert "ADMIN PENARIKAN 1 tolak <alasan>" in why["text"]
        await v.tap_and_wait("admin", button(listed, "Setujui penarikan"), "Penarikan #1: diproses")
        await v.reply_with("tina", "Penarikan #1 sebesar Rp200.000", "disetujui admin")
        dashboard = await v.ask("admin", "ADMIN", "Penarikan perlu admin: 0")
        assert "Pembukuan" in dashboard["text"]


async def test_payout_callbacks_refuse_forgeries_and_garbage_without_a_5xx(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, CONFIG) as app:
        forged = await app.http.post("/payouts/sandbox/notify", content=b'{"reference":"titip-1-1","status":'
                                     b'"completed","event_id":"x","amount":1}',
                                     headers={"X-Sandbox-Signature": "00" * 32})
        assert forged.status_code == 401
        unsigned = await app.http.post("/payouts/sandbox/notify", content=b"{}")
        assert unsigned.status_code == 401
        sandbox = app.runtime.services.withdrawals.provider
        body, headers = sandbox.signed_callback("titip-99-1", 1000, "completed")
        unknown = await app.http.post("/payouts/sandbox/notify", content=body, headers=headers)
        assert unknown.status_code == 200  # valid, but about nothing of ours
        garbage = b'{"reference": [1, 2'
        broken = await app.http.post("/payouts/sandbox/notify", content=garbage,
                                     headers={"X-Sandbox-Signature": sign("sandbox-test-secret", garbage)})
        assert broken.status_code == 400
        other = await app.http.post("/payouts/xendit/notify", content=b"{}")
        assert other.status_code == 404  # not the configured provider
        page = await app.http.get("/pay/sandbox/payouts/999")
        assert page.status_code == 404
