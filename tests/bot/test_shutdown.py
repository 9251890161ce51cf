"""Stopping the server never waits forever on one stage."""

from __future__ import annotations

import asyncio
import logging

from bot import app


async def test_a_shutdown_stage_that_never_ends_is_abandoned_and_names_what_still_runs(monkeypatch, caplog):
    monkeypatch.setattr(app, "STOP_STAGE_S", 0.05)
    stuck = asyncio.create_task(asyncio.Event().wait(), name="stuck-handler")
    with caplog.at_level(logging.ERROR, logger="bot.app"):
        await app._within("Telegram", asyncio.shield(stuck))
    assert not stuck.done()  # the stage was left behind, not the thing it waited for
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1 and "Telegram did not stop within" in errors[0] and "stuck-handler" in errors[0]
    stuck.cancel()


async def test_a_shutdown_stage_that_finishes_in_time_logs_nothing(caplog):
    finished = []

    async def stage() -> None:
        finished.append(True)

    with caplog.at_level(logging.ERROR, logger="bot.app"):
        await app._within("WhatsApp", stage())
    assert finished == [True] and not [r for r in caplog.records if r.levelno == logging.ERROR]
