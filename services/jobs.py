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


class Supervisor:
    def __init__(self) -> None:
        self._jobs: list[Job] = []
        self._tasks: list[asyncio.Task] = []

    def add(self, name: str, every_s: float, run: Callable[[], Awaitable[Any]]) -> None:
        """Register a job; it runs once soon after start, then every `every_s` seconds after the last run ended."""
        self._jobs.append(Job(name, every_s, run))

    @property
    def jobs(self) -> list[str]:
        return [job.name for job in self._jobs]

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.create_task(self._loop(job), name=f"job-{job.name}") for job in self._jobs]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def run_once(self, name: str) -> Any:
        """Run one job now (tools and tests)."""
        return await next(job for job in self._jobs if job.name == name).run()

    @staticmethod
    async def _loop(job: Job) -> None:
        while True:
            try:
                await job.run()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("job %s failed; it runs again in %.0f s", job.name, job.every_s)
            await asyncio.sleep(job.every_s)
