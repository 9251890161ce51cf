"""Pacing keeps to a messenger's overall rate and per-chat interval, and honours 429 back-offs."""

from services.pacing import Pacer


class FakeMonotonic:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_overall_rate_and_per_chat_interval_are_both_respected():
    clock = FakeMonotonic()
    pacer = Pacer(rate_per_s=30, per_chat_interval_s=1.0, monotonic=clock)
    waits = [pacer.reserve(f"chat{i}") for i in range(60)]
    assert waits[0] == 0 and abs(waits[-1] - 59 / 30) < 1e-9  # 60 different chats: 30 per second
    # chat0's own interval ended at +1 s, but the overall rate has booked every slot up to +2 s.
    assert abs(pacer.reserve("chat0") - 2.0) < 1e-9


def test_one_chat_gets_one_message_per_interval():
    clock = FakeMonotonic()
    pacer = Pacer(rate_per_s=1000, per_chat_interval_s=1.0, monotonic=clock)
    assert [round(pacer.reserve("same"), 6) for _ in range(3)] == [0, 1.0, 2.0]


def test_a_429_back_off_delays_everyone():
    clock = FakeMonotonic()
    pacer = Pacer(rate_per_s=1000, per_chat_interval_s=0, monotonic=clock)
    pacer.back_off(5.0)
    assert round(pacer.reserve("a"), 6) == 5.0


def test_a_burst_borrows_from_later_quota_then_the_interval_applies():
    clock = FakeMonotonic()
    pacer = Pacer(rate_per_s=1000, per_chat_interval_s=6.0, monotonic=clock, per_chat_burst=3)
    waits = [round(pacer.reserve("wa"), 3) for _ in range(5)]
    assert waits[:3] == [0, 0.001, 0.002]  # three back to back (spaced only by the overall rate)
    assert waits[3] == 6.0 and waits[4] == 12.0


def test_a_reply_to_someone_who_just_wrote_is_not_held_back_by_the_chat_limit():
    clock = FakeMonotonic()
    pacer = Pacer(rate_per_s=1000, per_chat_interval_s=6.0, monotonic=clock)
    pacer.reserve("wa")
    assert pacer.reserve("wa", per_chat=False) < 0.01
    assert pacer.reserve("wa") >= 11.9  # but its quota was used
