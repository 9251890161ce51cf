"""The periodic-job supervisor: every job that runs on a timer (the jastip sweep, the reconciler, the
metrics snapshot; later the ledger invariant, escrow releases, the payout reconciler) is registered here
and run by one supervisor, each on its own interval, each isolated from the others' failures."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    name: str
    every_s: float
    run: Callable[[], Awaitable[Any]]
    first_after_s: float = 0.0


class Supervisor:
    def __init__(self) -> None:
        self._jobs: list[Job] = []
        self._tasks: list[asyncio.Task[Any]] = []
        self._stopping = asyncio.Event()
        self._running: set[str] = set()

    def add(self, name: str, every_s: float, run: Callable[[], Awaitable[Any]], *,
            first_after_s: float = 0.0) -> None:
        """Register a job: it runs `first_after_s` after start, then every `every_s` seconds after the last run
        ended."""
        self._jobs.append(Job(name, every_s, run, first_after_s))

    @property
    def jobs(self) -> list[str]:
        return [job.name for job in self._jobs]

    def start(self) -> None:
        if not self._tasks:
            self._stopping.clear()
            self._tasks = [asyncio.create_task(self._loop(job), name=f"job-{job.name}") for job in self._jobs]

    async def stop(self, within_s: float = 10.0) -> None:
        """Stop: a job in the middle of a run may finish it (a transaction is never cut half-way), then all end."""
        self._stopping.set()
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=within_s)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def run_once(self, name: str) -> Any:
        """Run one job now (tools and tests)."""
        return await next(job for job in self._jobs if job.name == name).run()

    async def _loop(self, job: Job) -> None:
        if await self._pause(job.first_after_s):
            return
        while True:
            try:
                await job.run()
            except Exception:
                log.exception("job %s failed; it runs again in %.0f s", job.name, job.every_s)
            if await self._pause(job.every_s):
                return

    async def _pause(self, seconds: float) -> bool:
        """Wait `seconds`; True when the supervisor is stopping (then the loop ends between runs)."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return False
        return True
