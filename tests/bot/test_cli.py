"""`python -m bot` as an operator runs it: migrate, reconcile --once, serve; refusing unsafe production configs."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.support.processes import free_port

ROOT = Path(__file__).resolve().parents[2]


def run_bot(tmp_path: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 60):
    return subprocess.run(
        [sys.executable, "-m", "bot", *args], cwd=tmp_path, capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def test_migrate_then_reconcile_once_on_a_fresh_sqlite_file(tmp_path):
    env = {"BOT_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db"}
    migrated = run_bot(tmp_path, "migrate", env=env)
    assert migrated.returncode == 0, migrated.stderr
    assert (tmp_path / "cli.db").exists()
    reconciled = run_bot(tmp_path, "reconcile", "--once", env=env)
    assert reconciled.returncode == 0, reconciled.stderr
    assert "checked=0 changed=0 errors=0" in reconciled.stdout


def test_production_config_without_secrets_refuses_to_start(tmp_path):
    (tmp_path / "config.toml").write_text(
        '[server]\npublic_url = "https://titip.example.id"\n[telegram]\ntoken = "1:abc"\nmode = "webhook"\n'
        '[payments]\ngateways = ["midtrans"]\n'
    )
    result = run_bot(tmp_path, "serve")
    assert result.returncode == 2
    assert "telegram.webhook_secret" in result.stderr and "payments.midtrans.server_key" in result.stderr
    assert "1:abc" not in result.stderr


def test_serve_without_credentials_starts_serves_health_and_names_disabled_channels(tmp_path):
    port = free_port()
    # Only the port is set: the links follow it (a public_url left on :8080 would make every link dead).
    env = {**os.environ, "PYTHONPATH": str(ROOT), "BOT_SERVER__PORT": str(port), "BOT_SERVER__HOST": "0.0.0.0"}
    process = subprocess.Popen([sys.executable, "-m", "bot"], cwd=tmp_path, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "server did not come up"
                assert process.poll() is None, process.stdout.read()
                time.sleep(0.1)
        assert response.status_code == 200 and response.json()["status"] == "ok"
        assert response.json()["gateways"] == ["sandbox"]
        assert (tmp_path / "data" / "titip.db").exists()
    finally:
        process.terminate()
        output = process.communicate(timeout=30)[0]
    assert f"environment: development; payment and share links use http://127.0.0.1:{port}" in output
    assert "channel telegram: disabled — set telegram.token (BOT_TELEGRAM__TOKEN)" in output
    assert "channel whatsapp: disabled" in output
    assert process.returncode == 0


def test_the_clients_commands_as_an_operator_runs_them(tmp_path):
    import json

    env = {"BOT_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db", "BOT_API__SECRET_KEY": "c" * 40}
    added = run_bot(tmp_path, "clients", "add", "shopbot", "--callback-url", "https://shop.example/hook",
                    "--min-amount", "20000", "--origin", "https://shop.example", env=env)
    assert added.returncode == 0, added.stderr
    (line,) = added.stdout.splitlines()  # one JSON line, shown once
    credentials = json.loads(line)
    assert set(credentials) == {"client", "api_key", "signing_secret", "webhook_secret"}
    assert credentials["api_key"].startswith("tk_") and credentials["webhook_secret"].startswith("whsec_")
    again = run_bot(tmp_path, "clients", "add", "shopbot", "--callback-url", "https://x.example", env=env)
    assert again.returncode == 1 and "exists already" in again.stderr
    rotated = json.loads(run_bot(tmp_path, "clients", "rotate", "shopbot", env=env).stdout)
    assert rotated["api_key"] != credentials["api_key"]
    listed = [json.loads(x) for x in run_bot(tmp_path, "clients", "list", env=env).stdout.splitlines()]
    assert [(c["client"], c["owed"], c["disabled"]) for c in listed] == [("shopbot", 0, False)]
    over = run_bot(tmp_path, "clients", "settle", "shopbot", "--amount", "5000", "--reference", "BCA-1", env=env)
    assert over.returncode == 1 and "owed only Rp0" in over.stderr
    missing = run_bot(tmp_path, "clients", "resend", "shopbot", "nope", env=env)
    assert missing.returncode == 1 and "no deposit" in missing.stderr
    disabled = run_bot(tmp_path, "clients", "disable", "shopbot", env=env)
    assert disabled.returncode == 0 and json.loads(disabled.stdout)["changed"] is True
    assert json.loads(run_bot(tmp_path, "clients", "list", env=env).stdout)["disabled"] is True
    for secret in (credentials["api_key"], credentials["signing_secret"], credentials["webhook_secret"]):
        assert secret not in added.stderr  # the log never carries them


def test_clients_without_a_secret_key_in_production_say_which_setting_to_set(tmp_path):
    env = {"BOT_DATABASE__URL": f"sqlite+aiosqlite:///{tmp_path}/cli.db",
           "BOT_SERVER__PUBLIC_URL": "https://titip.example.id"}
    result = run_bot(tmp_path, "clients", "add", "x1", "--callback-url", "https://x.example/hook", env=env)
    assert result.returncode == 1 and "api.secret_key" in result.stderr
