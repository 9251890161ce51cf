"""Another bot's server on loopback, receiving what Titip forwards: Standard Webhooks on /hook (checked with the
reference `standardwebhooks` library, as the README tells client authors to) and the top-up Worker's credit
callback on /internal/deposit-callback (checked as the Worker's README example bot does). It can be told to
answer errors, hang, or be down (its port closed), and remembers every delivery."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from standardwebhooks import Webhook, WebhookVerificationError

from tests.support.servers import LoopbackServer


@dataclass
class Delivery:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool
    answered: int

    @property
    def json(self) -> dict[str, Any]:
        return json.loads(self.body)


@dataclass
class FakeClientBot(LoopbackServer):
    webhook_secret: str | None = None  # whsec_…: /hook deliveries are verified with it
    shared_secret: str | None = None  # a Worker bot's SHARED_SECRET
    answers: list[int] = field(default_factory=list)  # scripted statuses for the next deliveries, then 200
    hang_s: float = 0.0
    deliveries: list[Delivery] = field(default_factory=list)
    started: int = 0  # requests that arrived (a hanging one is counted before it is answered)

    def __post_init__(self) -> None:
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        app.router.add_post("/internal/deposit-callback", self._worker)
        self._app = app
        self._released = asyncio.Event()
        super().__init__(app)

    async def start(self) -> None:
        # The same port again after down(): the callback URL Titip knows stays right.
        self._runner = web.AppRunner(self._app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    async def stop(self) -> None:
        self._released.set()  # hung handlers end now, so the server can close
        await super().stop()
        self._released = asyncio.Event()

    async def down(self) -> None:
        await self.stop()
        self._runner = None

    async def up(self) -> None:
        await self.start()

    def hook_url(self) -> str:
        return f"{self.url}/hook"

    def worker_url(self) -> str:
        return f"{self.url}/internal/deposit-callback"

    async def _answer(self) -> int:
        if self.hang_s:
            try:  # like a stuck server, until the time is up or the test is over
                await asyncio.wait_for(self._released.wait(), timeout=self.hang_s)
            except TimeoutError:
                pass
        return self.answers.pop(0) if self.answers else 200

    async def _hook(self, request: web.Request) -> web.Response:
        self.started += 1
        body = await request.read()
        verified = False
        if self.webhook_secret is not None:
            try:
                Webhook(self.webhook_secret).verify(body, dict(request.headers))
                verified = True
            except WebhookVerificationError:
                verified = False
        status = await self._answer() if verified or self.webhook_secret is None else 401
        self.deliveries.append(Delivery("/hook", dict(request.headers), body, verified, status))
        return web.json_response({"received": status < 300}, status=status)

    async def _worker(self, request: web.Request) -> web.Response:
        """As the Worker's README bot: Bearer must be the shared secret, and X-Signature the HMAC of
        JSON.stringify(req.body) — the body parsed and written again compactly."""
        self.started += 1
        body = await request.read()
        secret = self.shared_secret or ""
        try:
            restated = json.dumps(json.loads(body), separators=(",", ":"), ensure_ascii=False)
        except ValueError:
            restated = ""
        expected = hmac.new(secret.encode(), restated.encode(), hashlib.sha256).hexdigest()
        verified = (request.headers.get("Authorization") == f"Bearer {secret}"
                    and hmac.compare_digest(expected, request.headers.get("X-Signature", "")))
        status = await self._answer() if verified else 401
        self.deliveries.append(Delivery("/internal/deposit-callback", dict(request.headers), body, verified, status))
        if status != 200:
            return web.json_response({"ok": False}, status=status)
        return web.json_response({"ok": True})

    def accepted(self) -> list[Delivery]:
        return [d for d in self.deliveries if d.verified and d.answered < 300]
