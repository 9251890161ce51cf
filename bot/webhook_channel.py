"""The webhook channel: client bots' servers as destinations of the one delivery path. A message is a deposit
event (services/forwarding.py says what it is and how it is signed); this adapter only looks up where it goes,
signs it at the moment of sending, POSTs it and maps the answer:

    2xx (a Worker bot: 200 {"ok": true})  -> delivered
    429 / 503 with Retry-After             -> RetryLater(retry_after): this client's queue pauses that long
    anything else, a timeout, no answer     -> RetryLater (the outbox backs off, for days, then alerts admins)
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

import aiohttp

from services.clients import ForwardTarget
from services.errors import NotFound, PermanentDeliveryError, RetryLater, StorageUnavailable
from services.forwarding import standard_headers, worker_acknowledged, worker_headers
from services.kinds import Channel, DepositFormat
from services.messaging import OutgoingMessage, SentMessage
from services.sealing import SealBroken

log = logging.getLogger(__name__)
TARGET_TTL_S = 5.0  # a rotated secret or a new callback URL is used within this long


class WebhookChannel:
    channel = Channel.WEBHOOK.value

    def __init__(self, targets: Callable[[int], Awaitable[ForwardTarget]], *, timeout_s: float = 15.0,
                 connections: int = 128) -> None:
        self._targets = targets
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=min(5.0, timeout_s))
        self._connections = connections
        self._cache: dict[int, tuple[float, ForwardTarget]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def _target(self, client_id: int) -> ForwardTarget:
        cached = self._cache.get(client_id)
        now = time.monotonic()
        if cached is not None and now - cached[0] < TARGET_TTL_S:
            return cached[1]
        target = await self._targets(client_id)
        self._cache[client_id] = (now, target)
        return target

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._connections, limit_per_host=self._connections)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
        return self._session

    async def send(self, chat_id: str, message: OutgoingMessage) -> SentMessage:
        event = message.event
        if event is None:
            raise PermanentDeliveryError("not a webhook event")
        try:
            target = await self._target(int(chat_id))
        except NotFound as exc:
            raise PermanentDeliveryError(str(exc)) from exc
        except (SealBroken, StorageUnavailable) as exc:
            log.error("webhook to client #%s: cannot read its credentials: %s", chat_id, exc)
            raise RetryLater(f"credentials unreadable: {exc}") from exc
        body = event.body
        if event.format is DepositFormat.WORKER:
            if target.worker_key is None:
                raise RetryLater("no Worker key for this client")
            headers = worker_headers(target.worker_key, body)
        else:
            # The timestamp is the moment of this attempt (receivers refuse one older than 5 minutes).
            headers = standard_headers(target.webhook_secrets, event.id, int(time.time()), body)
        try:
            async with self._http().post(target.callback_url, data=body.encode(), headers=headers,
                                         allow_redirects=False) as response:
                answer = await response.content.read(4096)
                status = response.status
                retry_after = response.headers.get("Retry-After")
        except (TimeoutError, aiohttp.ClientError, OSError, ValueError) as exc:
            raise RetryLater(f"{type(exc).__name__}: {exc}"[:300]) from exc
        ok = worker_acknowledged(status, answer) if event.format is DepositFormat.WORKER else 200 <= status < 300
        if ok:
            return SentMessage(provider_message_id=event.id, status=status)
        wait = float(retry_after) if retry_after and retry_after.isdigit() else None
        # The outbox retries it with its own backoff; a Retry-After also pauses this client's queue (chat_only:
        # this destination alone; every other client's queue goes on).
        raise RetryLater(f"HTTP {status}: {answer[:200].decode(errors='replace')}", wait, status=status,
                         chat_only=wait is not None)

    async def close(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
