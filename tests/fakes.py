"""Fakes for what crosses the process boundary, served on 127.0.0.1 and speaking the real wire format:
the Telegram Bot API and Midtrans (Snap + status API). Plus helpers that sign callbacks like Midtrans does."""

from __future__ import annotations

import asyncio
import itertools
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from services.payments.midtrans import signature as midtrans_signature


class Served:
    """`async with Fake() as fake:` starts it and stops it whatever happens."""

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


class LoopbackServer(Served):
    """An aiohttp app on 127.0.0.1 with a random port."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


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


@dataclass
class MidtransOrder:
    order_id: str
    gross_amount: int
    body: dict[str, Any]
    headers: dict[str, str]
    status: dict[str, Any] | None = None  # what the status API answers; None = 404 (not attempted yet)


@dataclass
class FakeMidtrans(LoopbackServer):
    server_key: str = "SB-Mid-server-TESTKEY123"
    orders: dict[str, MidtransOrder] = field(default_factory=dict)
    create_failures: list[int] = field(default_factory=list)
    slow_status: set[str] = field(default_factory=set)
    status_calls: list[str] = field(default_factory=list)
    status_delay_s: float = 0.0  # every status answer takes this long (makes overlapping checks visible)
    overlapping_status: list[str] = field(default_factory=list)  # orders asked about while already being asked
    _asking: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        app = web.Application()
        app.router.add_post("/snap/v1/transactions", self._create)
        app.router.add_get("/v2/{order_id}/status", self._status)
        self._released = asyncio.Event()
        super().__init__(app)

    async def stop(self) -> None:
        self._released.set()
        await super().stop()

    def config(self) -> dict[str, Any]:
        """The [payments.midtrans] settings that point the bot at this fake."""
        return {"server_key": self.server_key, "snap_base_url": self.url, "api_base_url": self.url}

    def _authorized(self, request: web.Request) -> bool:
        import base64

        expected = "Basic " + base64.b64encode(f"{self.server_key}:".encode()).decode()
        return request.headers.get("Authorization") == expected

    async def _create(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"error_messages": ["Access denied"]}, status=401)
        if self.create_failures:
            return web.json_response({"error_messages": ["scripted"]}, status=self.create_failures.pop(0))
        body = await request.json()
        details = body["transaction_details"]
        if not isinstance(details["gross_amount"], int):
            return web.json_response({"error_messages": ["gross_amount must be an integer"]}, status=400)
        order_id = details["order_id"]
        if order_id in self.orders:
            return web.json_response({"error_messages": ["order_id has already been taken"]}, status=406)
        self.orders[order_id] = MidtransOrder(order_id, details["gross_amount"], body, dict(request.headers))
        token = f"tok-{order_id}"
        return web.json_response(
            {"token": token, "redirect_url": f"https://app.sandbox.midtrans.com/snap/v2/vtweb/{token}"}, status=201
        )

    async def _status(self, request: web.Request) -> web.Response:
        if not self._authorized(request):
            return web.json_response({"status_code": "401", "status_message": "Unauthorized"}, status=401)
        order_id = request.match_info["order_id"]
        self.status_calls.append(order_id)
        if order_id in self._asking:
            self.overlapping_status.append(order_id)
        self._asking.add(order_id)
        try:
            if self.status_delay_s:
                await asyncio.sleep(self.status_delay_s)
            return await self._status_answer(request, order_id)
        finally:
            self._asking.discard(order_id)

    async def _status_answer(self, request: web.Request, order_id: str) -> web.Response:
        if order_id in self.slow_status:
            try:  # hang like a stuck gateway, until the test is over
                await asyncio.wait_for(self._released.wait(), timeout=30)
            except TimeoutError:
                pass
        order = self.orders.get(order_id)
        if order is None or order.status is None:
            return web.json_response(
                {"status_code": "404", "status_message": "Transaction doesn't exist."}, status=404
            )
        return web.json_response(order.status)

    def settle(self, order_id: str, transaction_status: str = "settlement", **extra: Any) -> dict[str, Any]:
        """Mark the order in the status API and return the matching signed notification."""
        order = self.orders[order_id]
        note = midtrans_notification(
            order_id, order.gross_amount, transaction_status, self.server_key, **extra
        )
        order.status = note
        return note


_STATUS_CODES = {"settlement": "200", "capture": "200", "pending": "201", "deny": "202", "cancel": "202",
                 "expire": "407", "refund": "200", "partial_refund": "200", "failure": "202"}


def midtrans_notification(
    order_id: str,
    amount: int | str,
    transaction_status: str,
    server_key: str,
    *,
    transaction_id: str | None = None,
    fraud_status: str | None = "accept",
    gross_amount: str | None = None,
    sign_amount: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A Midtrans HTTP notification as Midtrans sends it: gross_amount a string with two decimals, signed."""
    gross = gross_amount if gross_amount is not None else f"{int(amount)}.00"
    status_code = _STATUS_CODES.get(transaction_status, "200")
    body = {
        "transaction_time": "2026-11-20 10:24:25",
        "transaction_status": transaction_status,
        "transaction_id": transaction_id or f"tx-{order_id}",
        "status_message": "midtrans payment notification",
        "status_code": status_code,
        "signature_key": midtrans_signature(order_id, status_code, sign_amount or gross, server_key),
        "payment_type": "bank_transfer",
        "order_id": order_id,
        "merchant_id": "G123456789",
        "gross_amount": gross,
        "currency": "IDR",
        **extra,
    }
    if fraud_status is not None:
        body["fraud_status"] = fraud_status
    return body


def as_json(body: dict[str, Any]) -> bytes:
    return json.dumps(body).encode()


class TcpProxy(Served):
    """A loopback TCP forwarder in front of a real server, which a test can cut (an outage) and restore."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self._target = (target_host, target_port)
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.close()
            return
        self._writers.update((writer, up_writer))

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers.difference_update((writer, up_writer))

    async def cut(self) -> None:
        """Refuse new connections and drop the open ones."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def restore(self) -> None:
        await self.start()

    async def stop(self) -> None:
        await self.cut()


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


def photo_bytes(*, size: tuple[int, int] = (64, 48), with_gps: bool = True, fmt: str = "JPEG") -> bytes:
    """A real photo as a phone sends it: decodable, and (JPEG) carrying EXIF with a GPS position, which
    Titip must strip before anyone else sees the picture."""
    import io

    from PIL import Image

    image = Image.new("RGB", size, (200, 30, 60))
    out = io.BytesIO()
    if fmt == "JPEG" and with_gps:
        exif = Image.Exif()
        exif[0x010F] = "PhoneMaker"  # Make
        gps = exif.get_ifd(0x8825)
        gps[1], gps[2] = "S", (6.0, 12.0, 30.0)  # latitude ref, latitude: somewhere in Jakarta
        gps[3], gps[4] = "E", (106.0, 49.0, 10.0)
        image.save(out, format="JPEG", exif=exif)
    else:
        image.save(out, format=fmt)
    return out.getvalue()
