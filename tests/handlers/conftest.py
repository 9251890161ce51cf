"""The real conversation on a real database, without any channel: what people are told, message by message."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import select

from bot.app import build_runtime
from handlers.router import Incoming
from services.clock import FrozenClock
from services.messaging import OutgoingMessage
from storage.migrate import upgrade
from storage.models import OutboxMessage
from tests.support.harness import write_settings

JASTIPER, SITI, RINA = 1001, 1002, 1003
WA = "6281299990000"


class Talk:
    def __init__(self, rt) -> None:
        self.rt = rt
        self._ids = itertools.count(1)

    async def __call__(self, user: int | str, text: str = "", *, channel: str = "telegram", name: str | None = "Siti",
                       data: str | None = None, photo: bytes | None = None, username: str | None = None,
                       reply_to: str | None = None) -> list[OutgoingMessage]:
        return await self.rt.conversation.handle(Incoming(
            channel=channel, chat_id=str(user), user_id=str(user), display_name=name, text=text, callback_data=data,
            update_key=f"u{next(self._ids)}", photo=photo, username=username, reply_to=reply_to))

    async def text(self, user: int | str, text: str = "", **kwargs) -> str:
        return "\n".join(r.text for r in await self(user, text, **kwargs))

    async def notices(self, template: str) -> list[dict]:
        async with self.rt.db.read() as session:
            return [row.params for row in (await session.scalars(
                select(OutboxMessage).where(OutboxMessage.template == template).order_by(OutboxMessage.id)))]


@pytest.fixture
async def talk(tmp_path, fresh_db_url):
    settings = write_settings(tmp_path, {
        "database": {"url": fresh_db_url}, "payments": {"gateways": ["sandbox"]},
        "jastip": {"media_dir": str(tmp_path / "media")}, "support": {"contact": "WhatsApp 0811-1111-2222"},
    })
    rt = build_runtime(settings, clock=FrozenClock())
    await upgrade(rt.db)
    yield Talk(rt)
    await rt.delivery.close()
    await rt.http.aclose()
    await rt.db.close()


async def open_trip(talk: Talk, slug: str = "jpn25", stock: int = 5) -> None:
    assert "dibuat" in await talk.text(JASTIPER, f"TRIP BARU {slug} Jastip Jepang | 2099-12-31 20:00", name="Tina")
    assert "ditambahkan" in await talk.text(JASTIPER, f"PRODUK {slug} KK1 150rb {stock} KitKat Matcha", name="Tina")


def labels(replies: list[OutgoingMessage]) -> list[str]:
    return [b.label for r in replies for row in r.buttons for b in row]


