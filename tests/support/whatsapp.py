"""A fake WhatsApp Cloud (Graph) API on loopback, and inbound webhook payloads shaped and signed like Meta's."""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
from typing import Any

from aiohttp import web

from tests.support.servers import LoopbackServer

PHONE_ID = "109876543210"
APP_SECRET = "wa-app-SECRET-0001"
VERIFY_TOKEN = "wa-verify-TOKEN-0001"
TOKEN = "EAAG-wa-access-token-0001"


class FakeGraphAPI(LoopbackServer):
    """POST /<version>/<phone_id>/messages and /media, answering as the Cloud API does.

    `fail_next` scripts failures: a list of (http status, Meta error code) popped per message send.
    """

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []
        self.fail_next: list[tuple[int, int]] = []
        self.outage: tuple[int, int] | None = None  # (http status, Meta error code) for every send while set
        self.media_uploads = 0
        self._ids = itertools.count(1)
        app = web.Application()
        app.router.add_post("/{version}/{phone_id}/messages", self._messages)
        app.router.add_post("/{version}/{phone_id}/media", self._media)
        app.router.add_get("/whatsapp_business/attachments/", self._attachment)
        app.router.add_get("/{version}/{media_id}", self._media_url)
        self.stored_media: dict[str, bytes] = {}
        super().__init__(app)

    async def _media_url(self, request: web.Request) -> web.Response:
        media_id = request.match_info["media_id"]
        if media_id not in self.stored_media:
            return web.json_response({"error": {"message": "not found", "type": "OAuthException", "code": 100,
                                                "fbtrace_id": "x"}}, status=404)
        return web.json_response({"messaging_product": "whatsapp", "id": media_id, "mime_type": "image/jpeg",
                                  "sha256": "0" * 64, "file_size": len(self.stored_media[media_id]),
                                  "url": f"https://lookaside.fbsbx.com/whatsapp_business/attachments/?mid={media_id}"})

    async def _attachment(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.Response(status=401)
        return web.Response(body=self.stored_media[request.query["mid"]], content_type="image/jpeg")

    def config(self) -> dict[str, Any]:
        return {"phone_id": PHONE_ID, "token": TOKEN, "app_secret": APP_SECRET, "verify_token": VERIFY_TOKEN,
                "api_base_url": self.url}

    async def _messages(self, request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {TOKEN}" or request.match_info["phone_id"] != PHONE_ID:
            return web.json_response({"error": {"message": "Invalid OAuth access token", "type": "OAuthException",
                                                "code": 190, "fbtrace_id": "x"}}, status=401)
        body = await request.json()
        if self.fail_next or self.outage:
            status, code = self.outage or self.fail_next.pop(0)
            self.failures.append({**body, "_code": code})
            return web.json_response({"error": {"message": f"scripted {code}", "type": "OAuthException",
                                                "code": code, "error_data": {"messaging_product": "whatsapp",
                                                                             "details": "scripted"},
                                                "fbtrace_id": "x"}}, status=status)
        wamid = f"wamid.HBgM{next(self._ids):08d}"
        body["_wamid"] = wamid
        self.messages.append(body)
        return web.json_response({"messaging_product": "whatsapp",
                                  "contacts": [{"input": body.get("to"), "wa_id": body.get("to")}],
                                  "messages": [{"id": wamid}]})

    async def _media(self, request: web.Request) -> web.Response:
        await request.read()
        self.media_uploads += 1
        return web.json_response({"id": f"media-{self.media_uploads}"})

    def texts_to(self, wa_id: str) -> list[str]:
        out = []
        for m in self.messages:
            if m.get("to") != wa_id:
                continue
            kind = m.get("type")
            if kind == "text":
                out.append(m["text"]["body"])
            elif kind == "interactive":
                out.append(m["interactive"]["body"]["text"])
            elif kind == "image":
                out.append(m["image"].get("caption", ""))
            elif kind == "template":
                out.append(f"template:{m['template']['name']}")
        return out


def _envelope(value: dict[str, Any]) -> dict[str, Any]:
    return {"object": "whatsapp_business_account", "entry": [{"id": "102290129340398", "changes": [
        {"value": {"messaging_product": "whatsapp",
                   "metadata": {"display_phone_number": "6281100000000", "phone_number_id": PHONE_ID}, **value},
         "field": "messages"}]}]}


def _contact(wa_id: str, name: str) -> dict[str, Any]:
    return {"profile": {"name": name}, "wa_id": wa_id, "user_id": f"ID.{wa_id}BSUID"}


def text_update(wa_id: str, text: str, wamid: str, name: str = "Siti") -> dict[str, Any]:
    return _envelope({"contacts": [_contact(wa_id, name)], "messages": [
        {"from": wa_id, "id": wamid, "timestamp": "1763600000", "type": "text", "text": {"body": text}}]})


def button_update(wa_id: str, data: str, title: str, wamid: str, kind: str = "button_reply") -> dict[str, Any]:
    reply = {"id": data, "title": title} if kind == "button_reply" else {"id": data, "title": title,
                                                                          "description": ""}
    return _envelope({"contacts": [_contact(wa_id, "Siti")], "messages": [
        {"context": {"from": "6281100000000", "id": "wamid.previous"}, "from": wa_id, "id": wamid,
         "timestamp": "1763600001", "type": "interactive", "interactive": {"type": kind, kind: reply}}]})


def status_update(wa_id: str, wamid: str, status: str = "failed", code: int = 131026) -> dict[str, Any]:
    entry: dict[str, Any] = {"id": wamid, "status": status, "timestamp": "1763600002", "recipient_id": wa_id,
                             "recipient_user_id": f"ID.{wa_id}BSUID"}
    if status == "failed":
        entry["errors"] = [{"code": code, "title": "Message undeliverable", "message": "Message undeliverable",
                            "error_data": {"details": "Message failed to send."}}]
    return _envelope({"contacts": [_contact(wa_id, "Siti")], "statuses": [entry]})


def signed(payload: dict[str, Any], secret: str = APP_SECRET) -> tuple[bytes, dict[str, str]]:
    """Serialized as Meta does (non-ASCII escaped) and signed as sent."""
    raw = json.dumps(payload, ensure_ascii=True).encode()
    signature = "sha256=" + hmac.new(secret.encode(), raw, hashlib.sha256).hexdigest()
    return raw, {"X-Hub-Signature-256": signature, "Content-Type": "application/json"}


def image_update(wa_id: str, media_id: str, caption: str, wamid: str, quoted: str | None = None) -> dict[str, Any]:
    """An image message; `quoted` is the wamid of the bot's message it answers (WhatsApp's context)."""
    image = {"mime_type": "image/jpeg", "sha256": "0" * 64, "id": media_id}
    if caption:
        image["caption"] = caption
    message: dict[str, Any] = {"from": wa_id, "id": wamid, "timestamp": "1763600003", "type": "image", "image": image}
    if quoted is not None:
        message["context"] = {"from": "6281100000000", "id": quoted}
    return _envelope({"contacts": [_contact(wa_id, "Siti")], "messages": [message]})
