"""Fair delivery, with an injected clock: one person's volume never delays anyone else.

The lane (services/delivery.py) is driven by a small discrete-event simulation with the real pacing settings
of each channel: sends take 50 ms, arrivals happen at given clock times, and we record when each message
was allowed to go.
"""

from __future__ import annotations

import asyncio
import heapq
import random

import pytest

from bot.app import channel_limits
from bot.settings import Settings
from services.delivery import Delivery, Lane, Limits, Priority, send_in_order
from services.errors import PermanentDeliveryError, RetryLater
from services.messaging import OutgoingMessage, SentMessage

LATENCY = 0.05


def simulate(limits: Limits, arrivals: list[tuple[float, str, Priority, str]], *,
             failures: dict[str, tuple[float, str | None]] | None = None,
             until: float = 600.0) -> dict[str, float]:
    """When each labelled message was sent. `failures`: label -> (back-off seconds, destination or None for the
    whole channel) applied when that message is sent (its first try fails; it is pushed back)."""
    lane: Lane[str] = Lane(limits)
    pending = sorted(arrivals)
    completions: list[tuple[float, str, str, int, int]] = []  # (done at, destination, label, priority, seq)
    sent: dict[str, float] = {}
    failures = dict(failures or {})
    now = 0.0
    i = 0
    while now <= until:
        while i < len(pending) and pending[i][0] <= now + 1e-12:
            _, destination, priority, label = pending[i]
            lane.push(destination, priority, label, now)
            i += 1
        while completions and completions[0][0] <= now + 1e-12:
            _, destination, label, priority, seq = heapq.heappop(completions)
            if label in failures:
                seconds, scope = failures.pop(label)
                lane.back_off(seconds, now, destination if scope == "destination" else None)
                lane.push(destination, priority, label, now, seq=seq)
            lane.finished(destination, now)
        while (taken := lane.take(now)) is not None:
            destination, priority, seq, label = taken
            if label not in failures:
                sent[label] = now
            heapq.heappush(completions, (now + LATENCY, destination, label, priority, seq))
        candidates = [t for t in (lane.next_at(), completions[0][0] if completions else None,
                                  pending[i][0] if i < len(pending) else None) if t is not None]
        if not candidates:
            break
        now = max(now, min(candidates))
    return sent


def flood(destination: str, count: int, start: float = 0.0) -> list[tuple[float, str, Priority, str]]:
    return [(start + n * 0.01, destination, Priority.REPLY, f"flood{n}") for n in range(count)]


CHANNELS = ["telegram", "whatsapp"]


@pytest.mark.parametrize("channel", CHANNELS)
def test_while_one_chat_floods_every_other_reply_and_notice_goes_within_a_second(channel):
    limits = channel_limits(Settings())[channel]  # the real pacing settings
    rng = random.Random(7)
    others = []
    for n in range(30):
        at = rng.uniform(0.0, 30.0)
        kind = Priority.REPLY if n % 2 else Priority.NOTICE
        others.append((at, f"user{n}", kind, f"other{n}"))
    sent = simulate(limits, flood("flooder", 60) + others)
    for at, _, _, label in others:
        assert sent[label] - at <= 1.0, (label, sent[label] - at)
    flood_times = sorted(t for label, t in sent.items() if label.startswith("flood"))
    assert len(flood_times) == 60


def test_telegram_still_keeps_one_message_per_second_to_the_flooding_chat():
    limits = channel_limits(Settings())["telegram"]
    sent = simulate(limits, flood("flooder", 40))
    times = [sent[f"flood{n}"] for n in range(40)]
    assert times == sorted(times)  # in order
    assert all(b - a >= limits.interval_s - 1e-9 for a, b in zip(times, times[1:], strict=False))


def test_whatsapp_notices_to_one_person_keep_the_pair_limit_and_wait_alone():
    limits = channel_limits(Settings())["whatsapp"]
    notices = [(0.0, "busy", Priority.NOTICE, f"n{k}") for k in range(6)]
    others = [(0.5, "quiet", Priority.NOTICE, "quiet")]
    sent = simulate(limits, notices + others)
    busy = [sent[f"n{k}"] for k in range(6)]
    assert busy[:3] == pytest.approx([0.0, 0.05, 0.1], abs=0.06)  # the burst of three
    assert busy[3] >= 6.0 - 1e-9 and busy[4] >= 12.0 - 1e-9 and busy[5] >= 18.0 - 1e-9
    assert sent["quiet"] - 0.5 < 0.1


def test_a_broadcast_never_holds_back_replies_or_notices():
    limits = channel_limits(Settings())["telegram"]
    broadcast = [(0.0, f"member{n}", Priority.BULK, f"bc{n}") for n in range(1000)]
    late = [(5.0, "asker", Priority.REPLY, "reply"), (5.0, "payer", Priority.NOTICE, "credit")]
    sent = simulate(limits, broadcast + late)
    assert sent["reply"] - 5.0 <= 0.1 and sent["credit"] - 5.0 <= 0.1
    assert sent["reply"] <= sent["credit"]  # a reply before a notice
    window = sorted(sent.values())
    # never more than the channel rate in any one-second window (plus the slot at its edge)
    for k, start in enumerate(window):
        inside = [t for t in window[k:k + 40] if t < start + 1.0]
        assert len(inside) <= limits.rate_per_s + 1


def test_a_destination_told_to_slow_down_waits_alone():
    limits = channel_limits(Settings())["telegram"]
    arrivals = [(0.0, "limited", Priority.NOTICE, "first"), (0.1, "limited", Priority.NOTICE, "second"),
                (0.2, "other", Priority.NOTICE, "other")]
    sent = simulate(limits, arrivals, failures={"first": (30.0, "destination")})
    assert sent["other"] < 0.5
    assert sent["first"] >= 30.0 and sent["second"] > sent["first"]  # order kept after the back-off


def test_a_channel_wide_throttle_delays_everyone():
    limits = channel_limits(Settings())["whatsapp"]
    arrivals = [(0.0, "a", Priority.NOTICE, "first"), (0.1, "b", Priority.NOTICE, "b")]
    sent = simulate(limits, arrivals, failures={"first": (5.0, None)})
    assert sent["b"] >= 5.0 and sent["first"] >= 5.0


class _Recorder:
    channel = "fake"

    def __init__(self, fail: dict[str, list[Exception]] | None = None) -> None:
        self.sent: list[tuple[str, str]] = []
        self.fail = fail or {}

    async def send(self, chat_id: str, message: OutgoingMessage) -> SentMessage:
        await asyncio.sleep(0.001)
        errors = self.fail.get(message.text)
        if errors:
            raise errors.pop(0)
        self.sent.append((chat_id, message.text))
        return SentMessage(provider_message_id=str(len(self.sent)))


async def test_replies_are_retried_and_sent_in_order_on_the_event_loop():
    messenger = _Recorder({"two": [RetryLater("502", retry_after=0.05)]})
    delivery = Delivery()
    delivery.add_channel("fake", messenger, Limits(rate_per_s=1000))
    remembered = []
    await send_in_order(delivery, "fake", "c1", [OutgoingMessage("one"), OutgoingMessage("two"),
                                                 OutgoingMessage("three")],
                        on_sent=lambda reply, sent: remembered.append((reply.text, sent.provider_message_id)))
    assert messenger.sent == [("c1", "one"), ("c1", "two"), ("c1", "three")]
    assert [text for text, _ in remembered] == ["one", "two", "three"]
    await delivery.close()


async def test_a_permanent_failure_reaches_the_caller_and_the_next_message_still_goes():
    messenger = _Recorder({"blocked": [PermanentDeliveryError("403 blocked")]})
    delivery = Delivery()
    delivery.add_channel("fake", messenger, Limits(rate_per_s=1000))
    with pytest.raises(PermanentDeliveryError):
        await delivery.deliver("fake", "c1", OutgoingMessage("blocked"))
    await delivery.deliver("fake", "c1", OutgoingMessage("after"))
    assert messenger.sent == [("c1", "after")]
    await delivery.close()
