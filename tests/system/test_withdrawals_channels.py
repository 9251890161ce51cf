"""Withdrawals on Telegram and on WhatsApp, over real sockets (fake Bot API and Graph API on loopback): each
jastiper registers an account and withdraws with the buttons their messenger shows; the sandbox provider's
page completes one and fails the other, and each hears about it on their own channel."""

from __future__ import annotations

from services.kinds import AccountKind
from tests.support.harness import AppUnderTest
from tests.support.telegram import telegram_callback_update
from tests.support.waiting import wait_for
from tests.support.whatsapp import button_update
from tests.system.test_jastip_chat import JASTIPER, WA_BUYER, Chat, chat_config
from tests.webhooks.test_withdrawals_chat import sandbox_page_press

ADMIN = 9001


def tg_buttons(bot, user: int, fragment: str) -> list[dict]:
    call = next(c.params for c in reversed(bot.calls)
                if str(c.params.get("chat_id")) == str(user) and fragment in c.params.get("text", ""))
    return [b for row in bot.keyboard(call) for b in row]


def wa_buttons(graph, wa_id: str, fragment: str) -> list[dict]:
    message = next(m for m in reversed(graph.messages) if m.get("to") == wa_id and m.get("type") == "interactive"
                   and fragment in m["interactive"]["body"]["text"])
    return [b["reply"] for b in message["interactive"]["action"].get("buttons", [])]


async def test_jastipers_withdraw_on_telegram_and_on_whatsapp(tmp_path, fresh_db_url, bot, graph):
    config = chat_config(bot, graph) | {"payouts": {"provider": "sandbox", "new_account_hold_hours": 0},
                                        "admin": {"telegram_ids": [str(ADMIN)]}}
    async with AppUnderTest(tmp_path, fresh_db_url, config) as app:
        chat = Chat(app)
        await chat.tg(JASTIPER, "halo")
        await chat.wa_text("halo")
        await wait_for(lambda: bot.texts_to(JASTIPER) and graph.texts_to(WA_BUYER))
        wallet = app.runtime.services.wallet
        for channel, external in (("telegram", str(JASTIPER)), ("whatsapp", WA_BUYER)):
            person = await app.runtime.services.inbound.register(channel=channel, external_id=external,
                                                                 display_name=None, update_key=None)
            # Earnings as an escrow release leaves them (a fixture: no chat command can post to earnings).
            await wallet.adjust(person.user.id, 150_000, reference=f"seed:{external}", to=AccountKind.EARNINGS)
        await chat.tg(ADMIN, f"ADMIN VERIFIKASI tg:{JASTIPER} KTP dicek")
        await chat.tg(ADMIN, f"ADMIN VERIFIKASI wa:{WA_BUYER} KTP dicek")
        await wait_for(lambda: sum("diverifikasi" in t.lower() for t in bot.texts_to(ADMIN)) >= 2)

        # Telegram
        await chat.tg(JASTIPER, "/rekening mandiri 1111222233333 a.n. Tina Jastip")
        await wait_for(lambda: any("Simpan rekening ini" in t for t in bot.texts_to(JASTIPER)))
        save = next(b for b in tg_buttons(bot, JASTIPER, "Simpan rekening ini") if b["text"] == "Ya, simpan rekening")
        await chat.tg_update(telegram_callback_update(chat.next_id(), JASTIPER, save["callback_data"]))
        await wait_for(lambda: any("Rekening disimpan: Mandiri ****3333" in t for t in bot.texts_to(JASTIPER)))
        await chat.tg(JASTIPER, "/tarik 100rb")
        await wait_for(lambda: any("Tarik Rp100.000 ke Mandiri ****3333" in t for t in bot.texts_to(JASTIPER)))
        yes = tg_buttons(bot, JASTIPER, "Tarik Rp100.000")[0]
        assert yes["text"] == "Ya, tarik Rp100.000"
        await chat.tg_update(telegram_callback_update(chat.next_id(), JASTIPER, yes["callback_data"]))
        await wait_for(lambda: any("sedang diproses" in t for t in bot.texts_to(JASTIPER)))
        tg_page = next(b for b in tg_buttons(bot, JASTIPER, "sedang diproses") if "url" in b)["url"]

        # WhatsApp
        await chat.wa_text("rekening dana 0812-3456-7890 an Siti Aminah")
        await wait_for(lambda: any("Simpan rekening ini" in t for t in graph.texts_to(WA_BUYER)))
        save = next(b for b in wa_buttons(graph, WA_BUYER, "Simpan rekening ini") if b["title"].startswith("Ya"))
        await chat.wa(button_update(WA_BUYER, save["id"], save["title"], "wamid.w1"))
        await wait_for(lambda: any("Rekening disimpan: DANA ****7890" in t for t in graph.texts_to(WA_BUYER)))
        await chat.wa_text("tarik semua")
        await wait_for(lambda: any("Tarik Rp150.000 ke DANA ****7890" in t for t in graph.texts_to(WA_BUYER)))
        yes = wa_buttons(graph, WA_BUYER, "Tarik Rp150.000")[0]
        await chat.wa(button_update(WA_BUYER, yes["id"], yes["title"], "wamid.w2"))
        await wait_for(lambda: any("sedang diproses" in t for t in graph.texts_to(WA_BUYER)))
        wa_page = app.url + "/pay/sandbox/payouts/2"

        async def sent_to_provider() -> bool:
            views = [await app.runtime.services.withdrawals.describe(i) for i in (1, 2)]
            return all(v is not None and v.status == "processing" for v in views)

        await wait_for(sent_to_provider)
        await sandbox_page_press(app, tg_page, "Transfer berhasil")
        await sandbox_page_press(app, wa_page, "Transfer gagal")
        await wait_for(lambda: any("Penarikan #1 sebesar Rp100.000 sudah dikirim ke Mandiri ****3333" in t
                                   for t in bot.texts_to(JASTIPER)))
        failed = await wait_for(lambda: next((t for t in graph.texts_to(WA_BUYER) if "Penarikan #2" in t
                                              and "gagal" in t), None))
        assert "sudah kembali ke penghasilanmu" in failed
        assert "menolaknya" in failed and "SANDBOX" not in failed  # why, in words; the code is for admins
        for text in bot.texts_to(JASTIPER) + graph.texts_to(WA_BUYER):
            assert "1111222233333" not in text and "6281234567890" not in text  # account numbers masked
