"""The playground: the same conversation as Telegram and WhatsApp, in a browser, over one WebSocket — personas,
live replies and notices, the sandbox checkout, files, history, and who may connect."""

from __future__ import annotations

import re

import aiohttp

from tests.support.harness import AppUnderTest
from tests.support.images import photo_bytes
from tests.support.playground import Visitor, button
from tests.support.waiting import wait_for

SANDBOX = {"payments": {"gateways": ["sandbox"]}}


async def pay_in_sandbox(app: AppUnderTest, link: str, outcome: str = "paid") -> str:
    """What a person does on the sandbox checkout page: open it, press Bayar (or Gagalkan)."""
    path = link.removeprefix(app.url)
    page = await app.http.get(path)
    assert page.status_code == 200 and "Bayar" in page.text
    done = await app.http.post(path, data={"outcome": outcome})
    assert done.status_code == 200
    return done.text


async def test_a_visitor_runs_a_trip_and_a_top_up_as_two_people_and_sees_the_credit_arrive_live(
        tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, SANDBOX) as app, Visitor(app.url) as v:
        welcome = await v.ask("tina", "halo", "Halo Tina")
        assert button(welcome, "Tambah saldo")["data"] == "cmd:topup"
        created = await v.ask("tina", "TRIP BARU jpn25 Jastip Jepang Desember | 2099-12-31 20:00", "Trip jpn25 dibuat")
        assert f"{app.url}/t/jpn25" in created["text"]
        await v.ask("tina", "PRODUK jpn25 KK1 150rb 5 KitKat Matcha", "Produk KK1 ditambahkan")

        await v.ask("siti", "JOIN jpn25 | Nama: Siti", "Kamu ikut trip")
        await v.ask("siti", "PESAN KK1 2", "Pesanan P1 dibuat")
        bill = await v.ask("siti", "topup 50rb", "Tagihan top up Rp50.000")
        link = button(bill, "Bayar")["url"]
        assert link.startswith(f"{app.url}/pay/sandbox/")
        # Tina is someone else: Siti's bill never shows in her chat.
        assert not any("Tagihan" in text for text in v.texts("tina"))

        page = await pay_in_sandbox(app, link)
        assert "tidak ada uang sungguhan" in page and 'href="/"' in page
        credited = await v.reply_with("siti", "Rp50.000", "masuk")
        assert credited["direction"] == "out"
        balance = await v.ask("siti", "saldo", "Rp50.000")
        assert "Rp50.000" in balance["text"]
        # The checkout page of a final payment does not offer Bayar again.
        again = await app.http.get(link.removeprefix(app.url))
        assert 'value="paid"' not in again.text and "sudah selesai" in again.text


async def test_the_conversation_is_replayed_when_the_page_reconnects_and_a_resend_is_handled_once(
        tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, SANDBOX) as app, Visitor(app.url) as v:
        await v.ask("rina", "saldo", "Rp0")
        await v.disconnect()
        await v.connect()
        await wait_for(lambda: len(v.messages) >= 2)
        assert [m["direction"] for m in v.messages] == ["in", "out"]
        assert v.messages[0]["text"] == "saldo" and "Rp0" in v.messages[1]["text"]
        # The same client id twice (a page resending after a reconnect): one update, one answer.
        assert v.ws is not None
        for _ in range(2):
            await v.ws.send_json({"type": "send", "persona": "rina", "text": "bantuan", "client_id": "same-1"})
        await v.ask("rina", "saldo", "Rp0")  # answered after whatever the resend caused
        assert len(v.replies("rina")) == 3  # saldo, bantuan once, saldo


async def test_personas_are_separate_people_and_only_the_admin_persona_is_an_admin(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, SANDBOX) as app, Visitor(app.url) as v:
        dashboard = await v.ask("admin", "ADMIN", "Rp")
        assert "Rp" in dashboard["text"]
        refused = await v.ask("siti", "ADMIN", "")
        assert "Rp" not in refused["text"]
        # Two visitors are different people too: another browser's Admin tab is its own user.
        async with Visitor(app.url) as other:
            await other.ask("siti", "saldo", "Rp0")
            assert not any(m["text"] == "ADMIN" for m in other.messages)


async def test_a_rekap_file_downloads_only_for_the_visitor_whose_chat_it_is(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, SANDBOX) as app, Visitor(app.url) as v:
        await v.ask("tina", "TRIP BARU bdg01 Jastip Bandung | 2099-12-31 20:00", "Trip bdg01 dibuat")
        await v.ask("tina", "PRODUK bdg01 BR1 25rb 9 Brownies", "Produk BR1 ditambahkan")
        await v.ask("siti", "JOIN bdg01 | Nama: Siti", "Kamu ikut trip")
        await v.ask("siti", "PESAN BR1 1", "Pesanan P1 dibuat")
        await v.say("tina", "REKAP bdg01")
        recap = await wait_for(lambda: next((m for m in v.replies("tina") if m.get("document")), None))
        assert recap["document"].endswith((".xlsx", ".csv"))
        download = await v.session.get(app.url + recap["file"])
        assert download.status == 200 and "attachment" in download.headers["Content-Disposition"]
        assert len(await download.read()) > 100
        async with Visitor(app.url) as stranger:
            other = await stranger.session.get(app.url + recap["file"])
            assert other.status == 404


async def test_a_product_photo_sent_from_the_page_reaches_the_trip(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, SANDBOX) as app, Visitor(app.url) as v:
        await v.ask("tina", "TRIP BARU sby01 Jastip Surabaya | 2099-12-31 20:00", "Trip sby01 dibuat")
        before = len(v.replies("tina"))
        await v.say("tina", "PRODUK sby01 LP1 40rb 3 Lapis Surabaya", photo=photo_bytes(size=(320, 240)))
        await wait_for(lambda: any("Produk LP1 ditambahkan" in m["text"] for m in v.replies("tina")[before:]))
        mine = next(m for m in v.messages if m["direction"] == "in" and m.get("photo"))
        assert (await v.session.get(app.url + mine["file"])).status == 200
        page = await app.http.get("/t/sby01")
        found = re.search(r'src="(/media/products/\d+\.jpg)"', page.text)
        assert found is not None
        photo = await app.http.get(found.group(1))
        assert photo.status_code == 200 and photo.content.startswith(b"\xff\xd8")


async def test_the_websocket_needs_the_cookie_the_page_signed(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, SANDBOX) as app:
        async with aiohttp.ClientSession() as session:
            for cookie in (None, "forged.signature", "abc.def.ghi"):
                headers = {"Cookie": f"titip_playground={cookie}"} if cookie else {}
                try:
                    await session.ws_connect(app.url + "/playground/ws", headers=headers)
                    raise AssertionError("connected without a valid cookie")
                except aiohttp.WSServerHandshakeError as exc:
                    assert exc.status == 401
        async with Visitor(app.url) as v:
            assert v.ws is not None
            await v.ws.send_str("not json")
            await v.ws.send_json({"type": "send", "persona": "nobody", "text": "halo"})
            await wait_for(lambda: len(v.errors) == 2)
            assert "muat ulang" in v.errors[0]
            await v.ask("siti", "halo", "Halo Siti")


async def test_without_the_playground_every_playground_route_is_404(tmp_path, fresh_db_url):
    config = {**SANDBOX, "server": {"playground": False}}
    async with AppUnderTest(tmp_path, fresh_db_url, config) as app:
        for path in ("/", "/playground/ws", "/playground/files/1"):
            assert (await app.http.get(path)).status_code == 404
        assert app.runtime.playground is None and not app.runtime.delivery.can_send("playground")


async def test_the_sandbox_checkout_speaks_the_payers_language(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, SANDBOX) as app, Visitor(app.url) as v:
        await v.ask("rina", "BAHASA en", "English")
        bill = await v.ask("rina", "topup 50rb", "Rp50.000")
        link = button(bill, "Pay")["url"].removeprefix(app.url)
        page = (await app.http.get(link)).text
        assert "no real money" in page and ">Pay<" in page and 'lang="en"' in page
        assert "tidak ada uang sungguhan" in (await app.http.get(link + "?lang=id")).text
