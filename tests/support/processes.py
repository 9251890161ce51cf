"""The real server as a separate OS process (`python -m bot serve`), for tests and benchmarks that need what
only a process gives: two servers on one database, `kill -9`, peak RSS, time from start to /healthz."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _status_mb(pid: int, field: str) -> float:
    """A memory figure from /proc/<pid>/status in MB; 0 when the process is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def peak_rss_mb(pid: int) -> float:
    """The process's peak resident set size (VmHWM)."""
    return _status_mb(pid, "VmHWM")


def current_rss_mb(pid: int) -> float:
    return _status_mb(pid, "VmRSS")


async def wait_healthy(port: int, process: subprocess.Popen, timeout: float = 30) -> float:
    """Seconds until GET /healthz answers 200; raises if the process exits or time runs out."""
    start = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as client:
        while time.perf_counter() - start < timeout:
            if process.poll() is not None:
                raise RuntimeError(f"server exited with {process.returncode}")
            try:
                async with client.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        return time.perf_counter() - start
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.02)
    raise RuntimeError("server did not become healthy")


class ServerProcess:
    """One `python -m bot serve`, configured through BOT_* variables on top of the defaults below."""

    def __init__(self, workdir: Path, database_url: str, env: dict[str, str] | None = None,
                 port: int | None = None, log_path: Path | None = None) -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ, "PYTHONPATH": str(ROOT), "BOT_DATABASE__URL": database_url,
            "BOT_SERVER__HOST": "127.0.0.1", "BOT_SERVER__PORT": str(self.port), "BOT_SERVER__PUBLIC_URL": self.url,
            "BOT_LOG__LEVEL": "WARNING", **(env or {}),
        }
        self._log_path = log_path
        self.process: subprocess.Popen | None = None

    async def start(self, timeout: float = 30) -> float:
        """Start and wait for /healthz 200; the seconds that took."""
        output = open(self._log_path, "ab") if self._log_path else subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = subprocess.Popen([sys.executable, "-m", "bot", "serve"], cwd=self.workdir, env=self.env,
                                            stdout=output, stderr=subprocess.STDOUT if self._log_path else None)
        finally:
            if self._log_path:
                output.close()
        return await wait_healthy(self.port, self.process, timeout)

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """kill -9: no shutdown code runs."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    async def stop(self) -> None:
        """A graceful stop (SIGTERM), killed if it takes longer than 30 s."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        for _ in range(300):
            if self.process.poll() is not None:
                return
            await asyncio.sleep(0.1)
        self.kill()
