"""A new client can integrate from the README alone: its Python example and its curl lines, taken out of
README.md as they are written there, run against Titip."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from aiohttp import web

from tests.support.harness import AppUnderTest
from tests.support.servers import LoopbackServer
from tests.support.waiting import wait_for
from tests.webhooks.test_deposit_api import api_config, pay

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()
SECTION = README[README.index("## Use Titip from another bot"):README.index("## Layout")]


def block(after: str, language: str) -> str:
    start = SECTION.index(after)
    match = re.compile(rf"```{language}\n(.*?)```", re.DOTALL).search(SECTION, start)
    assert match is not None, f"no {language} block after {after!r}"
    return match.group(1)


@pytest.fixture
async def app(tmp_path, fresh_db_url):
    async with AppUnderTest(tmp_path, fresh_db_url, api_config()) as running:
        yield running


async def test_the_readmes_python_example_creates_a_deposit_and_credits_it_once(app):
    code = block("<!-- client-example -->", "python")
    assert len([line for line in code.splitlines() if line.strip()]) <= 16  # "a 15-line example"
    credited, seen = [], set()
    namespace: dict = {"first_time": lambda wid: wid not in seen and not seen.add(wid),
                       "credit": lambda user, amount: credited.append((user, amount))}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own code, as a reader runs it
    hook = web.Application()
    hook.router.add_post("/titip-webhook", namespace["titip_webhook"])
    async with LoopbackServer(hook) as server:
        creds = await app.runtime.api.clients.add("shopbot", f"{server.url}/titip-webhook")
        namespace.update(TITIP=app.url, KEY=creds.api_key, WHSEC=creds.webhook_secret)
        link = await namespace["create_deposit"]("user-7", 50_000, "order-7")
        assert link.startswith(app.url + "/pay/sandbox/")
        assert await namespace["create_deposit"]("user-7", 50_000, "order-7") == link  # a retry: the same link
        await pay(app, link.rsplit("/", 1)[1], 50_000, times=3)
        await wait_for(lambda: credited)
        await asyncio.sleep(0.3)  # (had a second event come, it would be here by now)
    assert credited == [("user-7", 50_000)]


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("openssl") is None, reason="needs curl and openssl")
async def test_the_readmes_curl_lines_create_read_and_sign_as_written(app):
    script = block("**The same with curl:**", "sh").replace("http://127.0.0.1:8080", app.url)
    creds = await app.runtime.api.clients.add("curlbot", "http://127.0.0.1:9/hook", require_signature=False)
    result = await asyncio.to_thread(subprocess.run, ["bash", "-c", script], capture_output=True, text=True,
                                     timeout=60, env={**os.environ, "KEY": creds.api_key,
                                                      "SIGNING_SECRET": creds.signing_secret})
    assert result.returncode == 0, result.stderr
    answers = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [a["deposit_id"] for a in answers] == ["order-42", "order-42", "order-43"]
    assert answers[0]["status"] == "pending" and "forwarding" in answers[1]
    # The signed request was checked, not merely accepted: a client that must sign gets 401 without it.
    strict = await app.runtime.api.clients.add("strict", "http://127.0.0.1:9/hook", require_signature=True)
    unsigned = script.split("# Signed")[0]
    result = await asyncio.to_thread(subprocess.run, ["bash", "-c", unsigned], capture_output=True, text=True,
                                     timeout=60, env={**os.environ, "KEY": strict.api_key})
    assert '"unauthorized"' in result.stdout
    signed_only = "\n".join(line for line in script.split("# Signed")[1].splitlines()[1:])
    result = await asyncio.to_thread(subprocess.run, ["bash", "-c", signed_only], capture_output=True, text=True,
                                     timeout=60, env={**os.environ, "KEY": strict.api_key,
                                                      "SIGNING_SECRET": strict.signing_secret})
    assert json.loads(result.stdout)["deposit_id"] == "order-43"
