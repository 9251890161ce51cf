"""Settings: TOML file, BOT_* environment overrides with __ nesting, and refusing unsafe production configs."""

from __future__ import annotations

import io
import logging
from contextlib import contextmanager

import pytest

from bot.app import secret_values
from bot.logs import RedactSecrets
from bot.settings import ConfigError, check_startable, load_settings


def write(tmp_path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text)
    return path


def test_toml_values_are_read_and_env_overrides_them(tmp_path, monkeypatch):
    path = write(tmp_path, '[server]\nport = 9000\n[payments.midtrans]\nserver_key = "from-file"\n'
                           '[wallet]\npresets = [20000, 40000]\n')
    monkeypatch.setenv("BOT_PAYMENTS__MIDTRANS__SERVER_KEY", "from-env")
    monkeypatch.setenv("BOT_DATABASE__URL", "postgresql+asyncpg://x@127.0.0.1/y")
    settings = load_settings(path)
    assert settings.server.port == 9000
    assert settings.wallet.presets == [20_000, 40_000]
    assert settings.payments.midtrans.server_key.get_secret_value() == "from-env"
    assert settings.database.url == "postgresql+asyncpg://x@127.0.0.1/y"
    assert "from-env" not in repr(settings)


def test_bot_config_env_names_the_file(tmp_path, monkeypatch):
    monkeypatch.setenv("BOT_CONFIG", str(write(tmp_path, "[server]\nport = 9100\n")))
    assert load_settings().server.port == 9100


def test_defaults_match_the_contract(tmp_path):
    settings = load_settings(write(tmp_path, ""))
    assert settings.server.port == 8080
    assert settings.database.url == "sqlite+aiosqlite:///data/titip.db"
    assert settings.telegram.api_base_url == "https://api.telegram.org/bot"
    assert settings.whatsapp.api_base_url == "https://graph.facebook.com"
    assert (settings.wallet.min_topup, settings.wallet.max_topup) == (10_000, 10_000_000)
    assert settings.wallet.presets == [50_000, 100_000, 250_000, 500_000, 1_000_000]
    assert settings.payments.gateways == ["sandbox"]
    assert settings.broadcast.price_per_message == 500
    assert (settings.reconcile.interval_s, settings.reconcile.concurrency, settings.reconcile.grace_hours) == (
        300, 8, 24)


def test_a_missing_explicit_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml")


def test_unknown_gateway_is_refused(tmp_path):
    with pytest.raises(ConfigError, match="unknown gateway"):
        load_settings(write(tmp_path, '[payments]\ngateways = ["paypal"]\n'))


def test_production_without_webhook_secrets_refuses_to_start_naming_each_setting(tmp_path):
    settings = load_settings(write(tmp_path, (
        '[server]\npublic_url = "https://titip.example.id"\n'
        '[telegram]\ntoken = "123:abc"\nmode = "webhook"\n'
        '[payments]\ngateways = ["midtrans", "sandbox"]\n'
    )))
    with pytest.raises(ConfigError) as caught:
        check_startable(settings)
    message = str(caught.value)
    assert "telegram.webhook_secret" in message
    assert "payments.midtrans.server_key" in message
    assert "sandbox" in message


def test_production_with_its_secrets_starts(tmp_path):
    settings = load_settings(write(tmp_path, (
        '[server]\npublic_url = "https://titip.example.id"\n'
        '[telegram]\ntoken = "123:abc"\nmode = "webhook"\nwebhook_secret = "s3cret"\n'
        '[payments]\ngateways = ["midtrans"]\n[payments.midtrans]\nserver_key = "SB-Mid-server-x"\n'
    )))
    check_startable(settings)


@contextmanager
def captured_log(name: str, log_filter: logging.Filter):
    """The logger `name` writing "LEVEL message" lines through `log_filter` into a string buffer."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(log_filter)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    logger = logging.getLogger(name)
    logger.addHandler(handler)
    try:
        yield logger, stream
    finally:
        logger.removeHandler(handler)


def test_secrets_never_reach_the_log(tmp_path):
    settings = load_settings(write(tmp_path, (
        '[telegram]\ntoken = "123456:SECRET-TOKEN-value"\n[payments.midtrans]\nserver_key = "SB-Mid-server-HIDDEN"\n'
    )))
    with captured_log("test.redaction", RedactSecrets(secret_values(settings))) as (logger, stream):
        logger.warning("calling https://api.telegram.org/bot%s/getMe", "123456:SECRET-TOKEN-value")
        try:
            raise RuntimeError("auth failed for SB-Mid-server-HIDDEN")
        except RuntimeError:
            logger.exception("gateway error")
    output = stream.getvalue()
    assert "SECRET-TOKEN" not in output and "HIDDEN" not in output
    assert output.count("***") >= 2


def test_a_request_aiohttp_cannot_parse_is_one_warning_line_not_an_error_with_a_traceback():
    from aiohttp.http_exceptions import BadHttpMessage

    from bot.logs import MalformedRequests

    with captured_log("aiohttp.server", MalformedRequests()) as (logger, stream):
        try:
            raise BadHttpMessage("Invalid header value char")
        except BadHttpMessage:
            logger.exception("Error handling request from 127.0.0.1")
        try:
            raise RuntimeError("a real bug")
        except RuntimeError:
            logger.exception("Error handling request from 127.0.0.1")
    lines = stream.getvalue().splitlines()
    assert lines[0].startswith("WARNING malformed HTTP request refused: 400, message:")
    assert "ERROR Error handling request" in lines[1] and "Traceback" in stream.getvalue()


@pytest.mark.parametrize("url", ["HTTPS://titip.example.id", "Https://titip.example.id/", " https://titip.example.id",
                                 "https://titip.example.id ", "http://203.0.113.7:8080", "http://0.0.0.0:8080",
                                 "http://titip.example.id"])
def test_production_is_recognised_however_the_url_is_written_and_the_sandbox_refused(tmp_path, url):
    settings = load_settings(write(tmp_path, f'[server]\npublic_url = "{url}"\n[payments]\ngateways = ["sandbox"]\n'))
    assert settings.server.environment == "production" and not settings.server.playground
    assert settings.server.public_url == settings.server.public_url.strip().lower().rstrip("/")
    with pytest.raises(ConfigError, match="remove 'sandbox' from payments.gateways"):
        check_startable(settings)


@pytest.mark.parametrize("url", ["http://127.0.0.1:8080", "http://localhost:9000", "http://LOCALHOST:9000/",
                                 "http://[::1]:8080", "http://127.1.2.3:8080", "https://localhost:8443"])
def test_a_loopback_url_is_development_with_the_sandbox_and_playground(tmp_path, url):
    settings = load_settings(write(tmp_path, f'[server]\npublic_url = "{url}"\n'))
    assert settings.server.environment == "development" and settings.server.playground
    check_startable(settings)


def test_an_explicit_development_setting_allows_a_lan_http_url_but_never_https(tmp_path):
    lan = load_settings(write(tmp_path, '[server]\npublic_url = "http://192.168.1.20:8080"\n'
                                        'environment = "development"\n'))
    assert lan.server.environment == "development"
    check_startable(lan)
    with pytest.raises(ConfigError, match="needs an http public_url"):
        load_settings(write(tmp_path, '[server]\npublic_url = "https://titip.example.id"\n'
                                      'environment = "development"\n'))


def test_an_explicit_production_setting_on_loopback_is_production(tmp_path):
    settings = load_settings(write(tmp_path, '[server]\nenvironment = "production"\n[payments]\n'
                                             'gateways = ["sandbox"]\n'))
    with pytest.raises(ConfigError, match="sandbox"):
        check_startable(settings)


def test_the_playground_is_refused_in_production(tmp_path):
    settings = load_settings(write(tmp_path, (
        '[server]\npublic_url = "https://titip.example.id"\nplayground = true\n'
        '[payments]\ngateways = ["midtrans"]\n[payments.midtrans]\nserver_key = "SB-Mid-server-x"\n')))
    with pytest.raises(ConfigError, match="playground runs only in development"):
        check_startable(settings)


@pytest.mark.parametrize("live", [
    '[payments.midtrans]\nserver_key = "Mid-server-live"\nproduction = true\n',
    '[payments.xendit]\nsecret_key = "xnd_production_abc"\ncallback_token = "t"\n',
    '[payments.doku]\nclient_id = "c"\nsecret_key = "s"\nbase_url = "https://api.doku.com"\n',
    '[payments.duitku]\nmerchant_code = "D1"\napi_key = "k"\nbase_url = "https://passport.duitku.com"\n',
])
def test_a_live_credential_next_to_the_sandbox_is_refused_even_in_development(tmp_path, live):
    settings = load_settings(write(tmp_path, '[payments]\ngateways = ["sandbox"]\n' + live))
    assert settings.server.environment == "development"
    with pytest.raises(ConfigError) as caught:
        check_startable(settings)
    (line,) = [p for p in str(caught.value).splitlines() if p.startswith("  - ")]
    assert "next to the sandbox gateway" in line  # one line that says why


def test_the_public_url_follows_host_and_port_unless_set(tmp_path):
    assert load_settings(write(tmp_path, "[server]\nport = 9090\n")).server.public_url == "http://127.0.0.1:9090"
    assert load_settings(write(tmp_path, '[server]\nhost = "::"\nport = 9091\n')).server.public_url == \
        "http://127.0.0.1:9091"
    assert load_settings(write(tmp_path, '[server]\nhost = "127.0.0.1"\nport = 9092\n'
                                         'public_url = "http://localhost:7000"\n')).server.public_url == \
        "http://localhost:7000"


def test_the_shipped_config_derives_the_public_url_from_its_port():
    from pathlib import Path

    shipped = Path(__file__).resolve().parents[2] / "config.toml"
    changed = shipped.read_text().replace("port = 8080", "port = 8181")
    assert "port = 8181" in changed
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.toml"
        path.write_text(changed)
        assert load_settings(path).server.public_url == "http://127.0.0.1:8181"


def test_withdrawals_are_off_by_default_and_their_limits_match_the_contract(tmp_path):
    payouts = load_settings(write(tmp_path, "")).payouts
    assert payouts.provider == "none"
    assert (payouts.min_amount, payouts.fee, payouts.approval_above, payouts.new_account_hold_hours) == (
        50_000, 0, 5_000_000, 24)


def test_sandbox_payouts_are_refused_in_production(tmp_path):
    settings = load_settings(write(tmp_path, (
        '[server]\npublic_url = "https://titip.example.id"\n'
        '[payments]\ngateways = ["midtrans"]\n[payments.midtrans]\nserver_key = "SB-Mid-server-x"\n'
        '[payouts]\nprovider = "sandbox"\n')))
    with pytest.raises(ConfigError, match="sandbox payout provider"):
        check_startable(settings)


@pytest.mark.parametrize(("live", "allowed"), [
    ('[payouts.xendit]\nsecret_key = "xnd_production_x"\ncallback_token = "t"\n', False),
    ('[payouts.xendit]\nsecret_key = "xnd_development_x"\ncallback_token = "t"\n', True),
])
def test_a_payout_provider_with_live_credentials_next_to_the_sandbox_gateway_is_refused(tmp_path, live, allowed):
    settings = load_settings(write(tmp_path, '[payments]\ngateways = ["sandbox"]\n[payouts]\nprovider = "xendit"\n'
                                             + live))
    if allowed:
        check_startable(settings)  # Xendit's test mode beside the sandbox gateway: both move no real money
        return
    with pytest.raises(ConfigError, match="xendit payout provider with live credentials"):
        check_startable(settings)


def test_a_midtrans_payout_provider_on_its_production_host_is_live(tmp_path):
    settings = load_settings(write(tmp_path, (
        '[payments]\ngateways = ["sandbox"]\n[payouts]\nprovider = "midtrans"\n'
        '[payouts.midtrans]\ncreator_key = "c"\nmerchant_key = "m"\nbase_url = "https://app.midtrans.com/iris/api/v1"\n')))
    with pytest.raises(ConfigError, match="midtrans payout provider with live credentials"):
        check_startable(settings)


def test_production_payouts_without_their_keys_refuse_to_start_naming_each(tmp_path):
    settings = load_settings(write(tmp_path, (
        '[server]\npublic_url = "https://titip.example.id"\n'
        '[payments]\ngateways = ["midtrans"]\n[payments.midtrans]\nserver_key = "SB-Mid-server-x"\n'
        '[payouts]\nprovider = "midtrans"\n[payouts.midtrans]\ncreator_key = "c"\n')))
    with pytest.raises(ConfigError) as caught:
        check_startable(settings)
    assert "payouts.midtrans.merchant_key (BOT_PAYOUTS__MIDTRANS__MERCHANT_KEY)" in str(caught.value)
    assert "creator_key" not in str(caught.value)


def test_an_unverified_payout_adapter_warns_at_every_start_until_its_trial_is_recorded(tmp_path, caplog):
    from bot.app import build_runtime

    config = ('[payments]\ngateways = ["midtrans"]\n[payments.midtrans]\nserver_key = "SB-Mid-server-x"\n'
              f'[database]\nurl = "sqlite+aiosqlite:///{tmp_path}/t.db"\n'
              '[payouts]\nprovider = "xendit"\n[payouts.xendit]\nsecret_key = "xnd_development_x"\n'
              'callback_token = "t"\n')
    for verified, warned in (("false", True), ("true", False)):
        settings = load_settings(write(tmp_path, config + f"verified = {verified}\n"))
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="bot.app"):
            build_runtime(settings).log_readiness()
        assert any("payouts.xendit.verified" in r.getMessage() for r in caplog.records) == warned


def test_the_deposit_api_is_off_by_default_with_the_contracts_limits(tmp_path):
    api = load_settings(write(tmp_path, "")).api
    assert (api.enabled, api.secret_key, api.rate_per_minute, api.rotation_grace_hours) == (False, None, 120, 24)


def test_production_with_the_deposit_api_needs_its_secret_key(tmp_path):
    production = ('[server]\npublic_url = "https://titip.example.id"\n'
                  '[payments]\ngateways = ["midtrans"]\n[payments.midtrans]\nserver_key = "SB-Mid-server-x"\n'
                  '[api]\nenabled = true\n')
    with pytest.raises(ConfigError, match="api.secret_key"):
        check_startable(load_settings(write(tmp_path, production)))
    check_startable(load_settings(write(tmp_path, production + 'secret_key = "' + "s" * 40 + '"\n')))
