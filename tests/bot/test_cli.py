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
