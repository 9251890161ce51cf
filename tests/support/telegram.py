"""A fake Telegram Bot API on loopback, and updates shaped as Telegram sends them."""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.support.servers import LoopbackServer


@dataclass
class BotCall:
    method: str
    params: dict[str, Any]


class FakeBotAPI(LoopbackServer):
    """Telegram Bot API: /bot<TOKEN>/<method>, form-encoded or JSON or multipart, answers {"ok":true,...}.

    `fail_next` scripts failures: a list of (status, retry_after) popped per sendMessage.
    """

    def __init__(self, token: str = "123456:TEST-token_abc") -> None:
        self.token = token
        self.calls: list[BotCall] = []
        self.fail_next: list[tuple[int, int | None]] = []
        self.outage: tuple[int, int | None] | None = None  # (status, retry_after) for every send while set
        self.pending_updates: list[dict[str, Any]] = []  # served to getUpdates (polling mode)
        self.blocked_chats: set[str] = set()  # sendMessage to these answers 403 (the user blocked the bot)
        self.files: list[tuple[str, str, bytes]] = []  # (chat_id, filename, content) of uploaded documents
        self._ids = itertools.count(1)
        self.stored_files: dict[str, bytes] = {}  # file_id -> content, served by getFile + /file/bot...
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        app.router.add_get("/file/bot{token}/{path:.+}", self._download)
        super().__init__(app)

    async def _download(self, request: web.Request) -> web.Response:
        file_id = request.match_info["path"].rsplit("/", 1)[-1].split(".")[0]
        if request.match_info["token"] != self.token or file_id not in self.stored_files:
            return web.Response(status=404)
        return web.Response(body=self.stored_files[file_id], content_type="application/octet-stream")

    @property
    def base_url(self) -> str:
        return f"{self.url}/bot"

    def sent(self, method: str = "sendMessage") -> list[dict[str, Any]]:
        return [c.params for c in self.calls if c.method == method]

    @staticmethod
    def keyboard(params: dict[str, Any]) -> list[list[dict[str, Any]]]:
        """The inline keyboard of a call: a JSON object in JSON calls, a JSON string in multipart ones."""
        markup = params["reply_markup"]
        return (json.loads(markup) if isinstance(markup, str) else markup)["inline_keyboard"]

    def texts_to(self, chat_id: int | str) -> list[str]:
        return [
            str(p.get("text") or p.get("caption") or "")
            for c in self.calls
            if c.method in ("sendMessage", "sendPhoto") and str((p := c.params).get("chat_id")) == str(chat_id)
        ]

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response({"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401)
        method = request.match_info["method"]
        if request.content_type == "application/json":
            params = await request.json()
        else:
            form = await request.post()
            params = {k: (v if isinstance(v, str) else "<file>") for k, v in form.items()}
            for value in form.values():
                if not isinstance(value, str):
                    self.files.append((str(form.get("chat_id")), value.filename, value.file.read()))
        if method == "sendMessage" and str(params.get("chat_id")) in self.blocked_chats:
            self.calls.append(BotCall("sendMessage!403", params))
            return web.json_response({"ok": False, "error_code": 403,
                                      "description": "Forbidden: bot was blocked by the user"}, status=403)
        if method in ("sendMessage", "sendPhoto") and (self.fail_next or self.outage):
            status, retry_after = self.outage or self.fail_next.pop(0)
            self.calls.append(BotCall(f"{method}!{status}", params))
            body: dict[str, Any] = {"ok": False, "error_code": status, "description": "scripted failure"}
            if retry_after is not None:
                body["parameters"] = {"retry_after": retry_after}
            return web.json_response(body, status=status)
        self.calls.append(BotCall(method, params))
        if method == "getUpdates":
            offset = int(params.get("offset") or 0)
            ready = [u for u in self.pending_updates if u["update_id"] >= offset]
            if not ready:
                await asyncio.sleep(0.05)  # a (very) short long-poll
            return web.json_response({"ok": True, "result": ready})
        return web.json_response({"ok": True, "result": self._result(method, params)})

    def _result(self, method: str, params: dict[str, Any]) -> Any:
        if method == "getFile":
            file_id = str(params.get("file_id"))
            return {"file_id": file_id, "file_unique_id": f"u{file_id}",
                    "file_size": len(self.stored_files.get(file_id, b"")), "file_path": f"photos/{file_id}.jpg"}
        if method == "getMe":
            return {"id": 123456, "is_bot": True, "first_name": "Titip", "username": "TitipTestBot",
                    "can_join_groups": True, "can_read_all_group_messages": False, "supports_inline_queries": False}
        if method in ("sendMessage", "sendPhoto", "sendDocument"):
            chat_id = params.get("chat_id")
            message: dict[str, Any] = {
                "message_id": next(self._ids), "date": 1763600000,
                "chat": {"id": int(chat_id) if str(chat_id).lstrip("-").isdigit() else 0, "type": "private"},
            }
            if "text" in params:
                message["text"] = params["text"]
            params["_message_id"] = message["message_id"]  # what the bot was told, for tests that answer it
            return message
        return True


def telegram_text_update(update_id: int, user_id: int, text: str, name: str = "Siti") -> dict[str, Any]:
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1763600000,
            "chat": {"id": user_id, "type": "private", "first_name": name},
            "from": {"id": user_id, "is_bot": False, "first_name": name, "language_code": "id"},
            "text": text,
            **({"entities": [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]}
               if text.startswith("/") else {}),
        },
    }


def telegram_callback_update(update_id: int, user_id: int, data: str, name: str = "Siti") -> dict[str, Any]:
    return {
        "update_id": update_id,
        "callback_query": {
            "id": f"cb{update_id}",
            "chat_instance": "ci1",
            "from": {"id": user_id, "is_bot": False, "first_name": name},
            "data": data,
            "message": {"message_id": 1, "date": 1763600000, "chat": {"id": user_id, "type": "private"},
                        "from": {"id": 123456, "is_bot": True, "first_name": "Titip"}, "text": "Pilih nominal"},
        },
    }


def telegram_photo_update(update_id: int, user_id: int, file_id: str, size: int, caption: str,
                          reply_to: int | None = None) -> dict[str, Any]:
    """A photo message as Telegram sends it: several sizes, the largest last; optionally answering the bot's
    message `reply_to`."""
    message: dict[str, Any] = {
        "message_id": update_id, "date": 1763600000, "chat": {"id": user_id, "type": "private"},
        "from": {"id": user_id, "is_bot": False, "first_name": "Budi"},
        "photo": [{"file_id": f"{file_id}s", "file_unique_id": "s1", "width": 90, "height": 90, "file_size": 100},
                  {"file_id": file_id, "file_unique_id": "b1", "width": 1280, "height": 960, "file_size": size}]}
    if caption:
        message["caption"] = caption
    if reply_to is not None:
        message["reply_to_message"] = {"message_id": reply_to, "date": 1763600000,
                                       "chat": {"id": user_id, "type": "private"},
                                       "from": {"id": 123456, "is_bot": True, "first_name": "Titip"}, "text": "…"}
    return {"update_id": update_id, "message": message}
