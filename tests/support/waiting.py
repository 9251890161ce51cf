"""Waiting for what happens in the background (a reply, a notice, a state), without sleeping blindly."""

from __future__ import annotations

import asyncio


def said(texts: list[str], *fragments: str) -> bool:
    """Some message among `texts` contains every fragment (replies carry a next step after the fact itself)."""
    return any(all(f in text for f in fragments) for text in texts)


async def wait_for(predicate, timeout: float = 10.0, interval: float = 0.02):
    """Poll an (async or sync) predicate until it returns truthy; fail the test on timeout."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(interval)
