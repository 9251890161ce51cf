"""kill -9 of Titip between a deposit's credit and its forward: the client's server still receives the event
(under its one id) once Titip is back, the money was credited once, and the books hold."""

from __future__ import annotations

import aiohttp

from services.clients import Clients
from services.clock import SystemClock
from services.sealing import Sealer
from storage.db import Database
from storage.migrate import upgrade
from tests.support.client_bot import FakeClientBot
from tests.support.money import assert_books_hold
from tests.support.processes import ServerProcess
from tests.support.waiting import wait_for

API_SECRET = "crash-test-api-secret-0123456789"


async def test_a_deposit_credited_just_before_kill_9_is_forwarded_after_the_restart(tmp_path, fresh_db_url):
    db = Database(fresh_db_url)
    await upgrade(db)
    env = {"BOT_API__ENABLED": "true", "BOT_API__SECRET_KEY": API_SECRET, "BOT_API__FORWARD_TIMEOUT_S": "30",
           "BOT_OUTBOX__LEASE_S": "1", "BOT_PAYMENTS__SANDBOX__SECRET": "crash-sandbox-secret",
           "BOT_RECONCILE__ENABLED": "false", "BOT_JASTIP__MEDIA_DIR": str(tmp_path / "media")}
    async with FakeClientBot(hang_s=600) as receiver:
        creds = await Clients(db, SystemClock(), Sealer(API_SECRET)).add("crashbot", receiver.hook_url())
        receiver.webhook_secret = creds.webhook_secret
        server = ServerProcess(tmp_path, fresh_db_url, env, log_path=tmp_path / "server.log")
        await server.start()
        try:
            async with aiohttp.ClientSession(base_url=server.url) as http:
                async with http.post("/api/v1/deposits", json={"deposit_id": "k9", "user_ref": "u", "amount": 30_000},
                                     headers={"Authorization": f"Bearer {creds.api_key}"}) as made:
                    assert made.status == 201
                    order_id = (await made.json())["payment_url"].rsplit("/", 1)[1]
                async with http.post(f"/pay/sandbox/{order_id}", data={"outcome": "paid"}) as paid:
                    assert paid.status == 200  # the credit is committed: our notify route answered 200
            await wait_for(lambda: receiver.started >= 1, timeout=20)  # the forward is in flight, unanswered
            server.kill()
            receiver.hang_s = 0
            restarted = ServerProcess(tmp_path, fresh_db_url, env, port=server.port, log_path=tmp_path / "server.log")
            await restarted.start()
            try:
                await wait_for(lambda: receiver.accepted(), timeout=30)
            finally:
                await restarted.stop()
        finally:
            server.kill()
    ids = {d.headers["webhook-id"] for d in receiver.deliveries}
    assert len(ids) == 1 and ids.pop().endswith("_paid")  # never two distinct events of one type
    assert all(d.verified for d in receiver.deliveries)
    summary = (await Clients(db, SystemClock(), Sealer(API_SECRET)).summaries())[0]
    assert (summary.owed, summary.paid) == (30_000, 1)
    await assert_books_hold(db)
    await db.close()
