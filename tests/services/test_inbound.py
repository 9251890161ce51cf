"""Inbound updates are recorded by their platform id before they are handled: a retried webhook is recognised."""

from __future__ import annotations

from services.clock import SystemClock
from services.inbound import Inbounds


async def test_a_retried_inbound_update_is_recognised(db):
    inbound = Inbounds(db, SystemClock())
    first = await inbound.register(channel="telegram", external_id="9", display_name="A", update_key="77")
    again = await inbound.register(channel="telegram", external_id="9", display_name="A", update_key="77")
    assert first.first_delivery and not again.first_delivery
    assert first.user.id == again.user.id


async def test_a_new_name_or_username_is_kept(db):
    inbound = Inbounds(db, SystemClock())
    await inbound.register(channel="telegram", external_id="9", display_name="Ani", update_key="1")
    renamed = await inbound.register(channel="telegram", external_id="9", display_name="Ani S", update_key="2",
                                     username="ani_s")
    again = await inbound.register(channel="telegram", external_id="9", display_name=None, update_key="3")
    assert renamed.user.id == again.user.id
    assert (again.user.display_name, again.user.username) == ("Ani S", "ani_s")
