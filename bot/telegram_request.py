"""python-telegram-bot's HTTP layer on aiohttp (PTB's own `BaseRequest` extension point).

PTB's `Bot` does everything Telegram-specific — methods, parameters, files, errors; this only moves bytes. It
replaces PTB's default httpx backend because, on a busy server, httpcore's pool checked every pooled
connection (a getpeername each) for every request it assigned and parsed each URL anew: py-spy put the httpx
stack at ~20 % of the event loop's CPU while replying (bench/inbound.py, Telegram). Telegram then has one HTTP
client stack, aiohttp, which the web server already is.
"""

from __future__ import annotations

import aiohttp
from telegram._utils.defaultvalue import DefaultValue
from telegram.error import NetworkError, TimedOut
from telegram.request import BaseRequest, RequestData


class AiohttpRequest(BaseRequest):
    __slots__ = ("_connections", "_connect_timeout", "_read_timeout", "_session")

    def __init__(self, *, connections: int = 8, read_timeout: float = 15.0, connect_timeout: float = 5.0) -> None:
        self._connections = connections
        self._read_timeout = read_timeout
        self._connect_timeout = connect_timeout
        self._session: aiohttp.ClientSession | None = None

    @property
    def read_timeout(self) -> float:
        return self._read_timeout

    async def initialize(self) -> None:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=self._connections))

    async def shutdown(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()

    async def do_request(self, url: str, method: str, request_data: RequestData | None = None,
                         read_timeout=BaseRequest.DEFAULT_NONE, write_timeout=BaseRequest.DEFAULT_NONE,
                         connect_timeout=BaseRequest.DEFAULT_NONE,
                         pool_timeout=BaseRequest.DEFAULT_NONE) -> tuple[int, bytes]:
        if self._session is None or self._session.closed:
            raise RuntimeError("AiohttpRequest is not initialized")
        read = self._read_timeout if isinstance(read_timeout, DefaultValue) else read_timeout
        connect = self._connect_timeout if isinstance(connect_timeout, DefaultValue) else connect_timeout
        data: aiohttp.FormData | dict[str, str] | None = None
        if request_data is not None:
            if request_data.contains_files:
                form = aiohttp.FormData()
                for name, value in request_data.json_parameters.items():
                    form.add_field(name, value)
                for name, part in request_data.multipart_data.items():
                    filename, content, *mime = part
                    form.add_field(name, content, filename=filename,
                                   content_type=mime[0] if mime else "application/octet-stream")
                data = form
            else:
                data = request_data.json_parameters
        timeout = aiohttp.ClientTimeout(total=None, connect=connect, sock_read=read)
        try:
            async with self._session.request(method, url, data=data, timeout=timeout,
                                             headers={"User-Agent": self.USER_AGENT}) as response:
                return response.status, await response.read()
        except TimeoutError as exc:
            raise TimedOut from exc
        except aiohttp.ClientError as exc:
            raise NetworkError(f"aiohttp.{type(exc).__name__}: {exc}") from exc
