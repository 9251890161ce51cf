"""Run the real Titip application on a loopback port, configured through a real config.toml file."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
from aiohttp import web

from bot.app import Runtime, build_runtime, build_web_app
from bot.settings import Settings, load_settings
from services.clock import Clock
from tests.support.processes import free_port


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(value)


def to_toml(data: dict[str, Any], prefix: str = "") -> str:
    scalars = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    out = ([f"[{prefix}]"] if prefix and scalars else []) + scalars
    for key, value in data.items():
        if isinstance(value, dict):
            out.append(to_toml(value, f"{prefix}.{key}" if prefix else key))
    return "\n".join(out) + "\n"


def write_settings(tmp_path: Path, data: dict[str, Any]) -> Settings:
    path = tmp_path / "config.toml"
    path.write_text(to_toml(data))
    return load_settings(path)


class AppUnderTest:
    """The whole server (routes, batcher, outbox, Telegram) on 127.0.0.1, built from a config file."""

    def __init__(self, tmp_path: Path, db_url: str, config: dict[str, Any], clock: Clock | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        base: dict[str, Any] = {
            "server": {"host": "127.0.0.1", "port": self.port, "public_url": self.url},
            "database": {"url": db_url},
            "reconcile": {"enabled": False},
            "outbox": {"poll_interval_s": 0.2},
            "jastip": {"media_dir": str(tmp_path / "media")},
        }
        for key, value in config.items():
            base[key] = {**base.get(key, {}), **value} if isinstance(value, dict) else value
        self.settings = write_settings(tmp_path, base)
        self.runtime: Runtime = build_runtime(self.settings, clock=clock)
        self._runner: web.AppRunner | None = None
        self.http = httpx.AsyncClient(base_url=self.url, timeout=30)

    async def start(self) -> "AppUnderTest":
        self._runner = web.AppRunner(build_web_app(self.runtime), access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        if self.runtime.telegram is not None:
            from tests.support.waiting import wait_for

            await wait_for(self.runtime.telegram.ready.is_set)
        return self

    async def stop(self) -> None:
        await self.http.aclose()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> "AppUnderTest":
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
