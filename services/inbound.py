"""Inbound updates: every message and button tap is recorded by its platform id before it is handled, so a
webhook delivered twice is recognised (the database's unique key decides, across restarts and processes),
and its sender is created on first contact and kept up to date (name, @username, last seen)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncSession

from services.batcher import WriteBatcher
from services.clock import Clock
from services.wallet import UserView, user_views
from storage.db import Database
from storage.models import InboundUpdate, User
from storage.queries import insert_or_skip, pairs_in


@dataclass(frozen=True)
class Inbound:
    user: UserView
    first_delivery: bool  # False when this update id was seen before (a retried webhook)


@dataclass(frozen=True)
class _Arrival:
    channel: str
    external_id: str
    display_name: str | None
    update_key: str | None
    alt_id: str | None
    username: str | None = None


class Inbounds:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._clock = clock
        # Batched, because on SQLite each durable commit costs an fsync and updates arrive in bursts.
        self.batcher: WriteBatcher[_Arrival, Inbound] = WriteBatcher(db, self._register_batch)

    async def register(
        self,
        *,
        channel: str,
        external_id: str,
        display_name: str | None,
        update_key: str | None,
        alt_id: str | None = None,
        username: str | None = None,
    ) -> Inbound:
        """Record an inbound update (deduplicated by its id) and return its sender, created on first contact.
        Names arrive already cleaned and bounded by the channel adapter."""
        return await self.batcher.submit(_Arrival(channel, external_id, display_name, update_key, alt_id,
                                                  username))

    async def _register_batch(self, session: AsyncSession, items: Sequence[_Arrival]) -> list[Inbound]:
        now = self._clock.now()
        keyed = [{"channel": i.channel, "update_key": i.update_key, "received_at": now}
                 for i in items if i.update_key is not None]
        fresh: set[tuple[str, str]] = set()
        if keyed:
            table = InboundUpdate.__table__
            inserted = await session.execute(
                insert_or_skip(session, table, ["channel", "update_key"]).values(keyed)
                .returning(table.c.channel, table.c.update_key)
            )
            fresh = {(row.channel, row.update_key) for row in inserted}
        people = {(i.channel, i.external_id): i for i in items}
        await session.execute(
            insert_or_skip(session, User.__table__, ["channel", "external_id"]).values([
                {"channel": c, "external_id": e, "display_name": i.display_name, "alt_id": i.alt_id,
                 "username": i.username, "language": "id", "created_at": now}
                for (c, e), i in people.items()
            ])
        )
        rows = list((await session.execute(
            update(User)
            .where(pairs_in(User.channel, User.external_id, people))
            .values(last_inbound_at=now)
            .returning(User)
        )).scalars())
        views = await user_views(session, rows)
        users = {(u.channel, u.external_id): views[u.id] for u in rows}
        renamed = [{"uid": users[key].id, "name": i.display_name, "username": i.username}
                   for key, i in people.items()
                   if (i.display_name and i.display_name != users[key].display_name)
                   or (i.username and i.username != users[key].username)]
        if renamed:  # a person's name or @username changed since we last saw them
            table = User.__table__
            await session.execute(update(table).where(table.c.id == bindparam("uid")).values(
                display_name=bindparam("name"), username=bindparam("username")), renamed)
        results = []
        for item in items:
            key = (item.channel, item.update_key)
            first = item.update_key is None or key in fresh
            fresh.discard(key)  # a second copy within the same batch is a retry too
            results.append(Inbound(user=users[(item.channel, item.external_id)], first_delivery=first))
        return results
