"""The web face in a real browser (Playwright driving Debian's chromium): a person runs a trip and a top-up in
the playground as a jastiper and a buyer, then opens the public trip page. Screenshots at phone and desktop
widths are kept as artifacts (TITIP_ARTIFACTS, default .artifacts/screenshots).

Browsers cannot be downloaded on these machines: .ci/run installs Debian's chromium; on a laptop without one
these tests skip with the reason.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support.harness import AppUnderTest

CHROMIUM = os.environ.get("TITIP_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(os.environ.get("TITIP_ARTIFACTS", Path(__file__).resolve().parents[2] / ".artifacts" / "screenshots"))
PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1280, "height": 900}
CONFIG = {"payments": {"gateways": ["sandbox"]}, "whatsapp": {"display_number": "6281100000000"}}

pytestmark = pytest.mark.skipif(
    CHROMIUM is None and os.environ.get("TITIP_REQUIRE_BROWSER") != "1",
    reason="no chromium on this machine (apt-get install chromium; .ci/run does it); browser tests skipped")


@pytest.fixture
def artifacts() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
async def browser():
    if os.environ.get("TITIP_REQUIRE_BROWSER") == "1" and CHROMIUM is None:
        pytest.fail("TITIP_REQUIRE_BROWSER=1 but no chromium was found")
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        # --no-sandbox: CI runs as root, where Chromium's sandbox cannot start.
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            await launched.close()


def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite+aiosqlite:///{tmp_path / 'titip.db'}"


async def say(page, text: str, expect: str) -> None:
    """Type into the open chat as a person does, press Enter, and wait until the bot's answer shows."""
    chat = page.locator(".chat:not([hidden]) .messages")
    before = await chat.locator(".msg.bot", has_text=expect).count()
    await page.fill(".composer .text", text)
    await page.press(".composer .text", "Enter")
    await chat.locator(".msg.bot", has_text=expect).nth(before).wait_for(timeout=10_000)


async def test_a_person_runs_a_trip_and_a_top_up_in_the_browser_and_sees_the_credit_notice(
        tmp_path, browser, artifacts):
    async with AppUnderTest(tmp_path, sqlite_url(tmp_path), CONFIG) as app:
        context = await browser.new_context(viewport=PHONE, device_scale_factor=2)
        page = await context.new_page()
        await page.goto(app.url + "/")
        await page.locator(".pg-status", has_text="Tersambung").wait_for()

        # Tina, the jastiper, opens a trip and adds products.
        await say(page, "halo", "Halo Tina")
        await page.get_by_role("button", name="Lihat panduan").click()
        await page.locator(".chat:not([hidden]) .msg.bot", has_text="jastiper").first.wait_for()
        await say(page, "TRIP BARU jpn25 Jastip Jepang Desember | 2099-12-31 20:00", "Trip jpn25 dibuat")
        await say(page, "PRODUK jpn25 KK1 150rb 5 KitKat Matcha", "Produk KK1 ditambahkan")
        await say(page, "PRODUK jpn25 TK1 85rb 3 Tokyo Banana", "Produk TK1 ditambahkan")

        # Siti, a buyer: joins, orders, tops up through the sandbox checkout.
        await page.get_by_role("tab", name="Siti").click()
        await say(page, "JOIN jpn25 | Nama: Siti", "Kamu ikut trip")
        await say(page, "PESAN KK1 2", "Pesanan P1 dibuat")
        await say(page, "topup 50rb", "Tagihan top up Rp50.000")
        async with context.expect_page() as opened:
            await page.locator(".chat:not([hidden]) a.button", has_text="Bayar").last.click()
        checkout = await opened.value
        await checkout.wait_for_load_state()
        assert await checkout.locator(".notice").is_visible()
        await checkout.screenshot(path=str(artifacts / "sandbox-phone.png"))
        await checkout.get_by_role("button", name="Bayar").click()
        await checkout.locator(".status").wait_for()
        await checkout.close()

        # The credit notice arrives in Siti's chat by itself (the WebSocket), no reload.
        notice = page.locator(".chat:not([hidden]) .msg.bot", has_text="Rp50.000")
        await notice.filter(has_text="masuk").first.wait_for(timeout=10_000)
        await say(page, "saldo", "Rp50.000")
        await page.screenshot(path=str(artifacts / "playground-phone.png"))

        # Tina sees Siti's order in her own tab.
        await page.get_by_role("tab", name="Tina (jastiper)").click()
        await say(page, "PESANAN jpn25", "P1")
        await page.set_viewport_size(DESKTOP)
        await page.screenshot(path=str(artifacts / "playground-desktop.png"))
        await context.close()

        # The public trip page, as a visitor from Instagram sees it.
        for name, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
            visitor = await browser.new_context(viewport=viewport)
            trip = await visitor.new_page()
            response = await trip.goto(app.url + "/t/jpn25")
            assert response is not None and response.status == 200
            assert await trip.get_by_role("heading", level=1).inner_text() == "Jastip Jepang Desember"
            cards = trip.locator(".product")
            assert await cards.count() == 2
            assert "Rp150.000" in await cards.nth(0).inner_text()
            assert await trip.get_by_role("link", name="Gabung lewat WhatsApp").get_attribute("href") == \
                "https://wa.me/6281100000000?text=JOIN%20jpn25"
            assert "Siti" not in await trip.locator("body").inner_text()
            await trip.screenshot(path=str(artifacts / f"trip-{name}.png"), full_page=True)
            await visitor.close()
    sizes = {shot: (artifacts / f"{shot}.png").stat().st_size  # noqa: ASYNC240 (after the server stopped)
             for shot in ("playground-phone", "playground-desktop", "trip-phone", "trip-desktop", "sandbox-phone")}
    assert min(sizes.values()) > 5_000, sizes
