"""The Bot API methods the bot sends with, as plain HTTP calls.

python-telegram-bot still receives updates (webhook/polling), downloads files and sets the webhook; sending
goes through this thin client because broadcasts need ~1,000 sends/s and profiling showed the send path
bound by CPU: PTB's object layer plus httpcore's pool, which checks every pooled connection's socket
(getpeername) for each request it assigns. An aiohttp session does one lookup per request.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import aiohttp

from services.errors import PermanentDeliveryError, RetryLater

log = logging.getLogger(__name__)


class BotApi:
    def __init__(self, token: str, api_base_url: str, *, connections: int = 64, timeout_s: float = 15.0) -> None:
        self._base = f"{api_base_url.rstrip('/')}{token}/"
        self._connections = connections
        self._timeout = aiohttp.ClientTimeout(total=timeout_s, connect=5.0)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        # Created on first use, inside the running loop (no import-time or constructor side effects).
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self._connections), timeout=self._timeout,
                json_serialize=lambda value: json.dumps(value, ensure_ascii=False, separators=(",", ":")),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def call(self, method: str, params: dict[str, Any], *,
                   upload: tuple[str, str, bytes] | None = None) -> Any:
        """POST one method; the `result` on success. 429 and 5xx/network → RetryLater; 400/403 →
        PermanentDeliveryError. `upload` is (field, filename, content) sent as multipart."""
        params = {k: v for k, v in params.items() if v is not None}
        try:
            if upload is None:
                request = self._client().post(self._base + method, json=params)
            else:
                form = aiohttp.FormData()
                for key, value in params.items():
                    form.add_field(key, value if isinstance(value, str) else json.dumps(value, ensure_ascii=False))
                field, filename, content = upload
                form.add_field(field, content, filename=filename, content_type="application/octet-stream")
                request = self._client().post(self._base + method, data=form)
            async with request as response:
                status = response.status
                try:
                    body = await response.json(content_type=None)
                except (ValueError, aiohttp.ContentTypeError):
                    body = None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise RetryLater(f"telegram unreachable: {type(exc).__name__}") from exc
        if isinstance(body, dict) and body.get("ok") is True:
            return body.get("result")
        description = str(body.get("description", "")) if isinstance(body, dict) else f"HTTP {status}"
        code = int(body.get("error_code", status)) if isinstance(body, dict) else status
        if code == 429:
            retry_after = (body.get("parameters") or {}).get("retry_after", 1) if isinstance(body, dict) else 1
            # Mostly one chat's limit (1/s): that chat backs off alone; the overall rate is kept by our pacing.
            raise RetryLater(f"telegram 429: retry after {retry_after}s", retry_after=float(retry_after),
                             chat_only=True)
        if code in (400, 403):
            raise PermanentDeliveryError(f"telegram refused: {description}"[:300])
        raise RetryLater(f"telegram unavailable: {code} {description}"[:300])
