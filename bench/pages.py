"""The public trip page with 50 products: page weight (HTML + CSS) and server time, next to a bare endpoint.

    python bench/pages.py [--products 50] [--requests 2000]

Builds the whole server on SQLite in this process, with a trip of N products (each with a photo) created
through the same service the chat uses, then requests /t/<slug> sequentially. Server time is measured around
the route's handler by a middleware (request in, response out, on the server's clock); a bare endpoint that
returns a body of the same size on the same server is the same-run baseline. Also draws the preview card once
(cold) and reads it again (cached). Prints a table, then JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from report import print_table  # noqa: E402

from tests.support.harness import AppUnderTest  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def photo(index: int) -> bytes:
    from PIL import Image

    image = Image.new("RGB", (600, 600), ((index * 37) % 255, (index * 91) % 255, 120))
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


async def main(products: int, requests: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/titip.db"
        app = AppUnderTest(Path(tmp), url, {"payments": {"gateways": ["sandbox"]},
                                            "whatsapp": {"display_number": "6281100000000"}})
        timings: dict[str, list[float]] = {"/t/bench": [], "/bare": []}
        body_size = {"n": 0}

        @web.middleware
        async def timed(request: web.Request, handler):
            started = time.perf_counter()
            response = await handler(request)
            if request.path in timings:
                timings[request.path].append((time.perf_counter() - started) * 1000)
            return response

        async def bare(request: web.Request) -> web.Response:
            return web.Response(body=b"x" * body_size["n"], content_type="text/html")

        from bot.app import build_web_app

        web_app = build_web_app(app.runtime)
        web_app.middlewares.append(timed)
        web_app.router.add_get("/bare", bare)
        runner = web.AppRunner(web_app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", app.port).start()
        try:
            services = app.runtime.services
            owner = (await services.inbound.register(channel="playground", external_id="bench.tina",
                                                     display_name="Tina", update_key=None)).user
            await services.trips.create(owner.id, "bench", "Jastip Jepang Desember",
                                        datetime.now(UTC) + timedelta(days=20))
            for i in range(products):
                await services.trips.add_product(owner.id, "bench", f"P{i:02d}", 50_000 + i * 1_000, 10,
                                                 f"Produk oleh-oleh nomor {i}", photo(i))
            async with httpx.AsyncClient(base_url=app.url, timeout=30) as client:
                page = await client.get("/t/bench")
                css = await client.get("/static/site.css")
                body_size["n"] = len(page.content)
                for _ in range(50):  # warm-up
                    await client.get("/t/bench")
                    await client.get("/bare")
                timings["/t/bench"].clear()
                timings["/bare"].clear()
                client_ms: dict[str, list[float]] = {"/t/bench": [], "/bare": []}
                for _ in range(requests):
                    for path in ("/t/bench", "/bare"):
                        started = time.perf_counter()
                        response = await client.get(path)
                        client_ms[path].append((time.perf_counter() - started) * 1000)
                        assert response.status_code == 200
                started = time.perf_counter()
                card = await client.get("/t/bench/card.jpg")
                card_cold_ms = (time.perf_counter() - started) * 1000
                started = time.perf_counter()
                await client.get("/t/bench/card.jpg")
                card_warm_ms = (time.perf_counter() - started) * 1000
        finally:
            await runner.cleanup()
            await app.http.aclose()
    result = {
        "products": products,
        "requests": requests,
        "html_bytes": len(page.content),
        "css_bytes": len(css.content),
        "weight_kb": round((len(page.content) + len(css.content)) / 1024, 1),
        "card_bytes": len(card.content),
        "card_cold_ms": round(card_cold_ms, 1),
        "card_cached_ms": round(card_warm_ms, 2),
    }
    for path, name in (("/t/bench", "trip_page"), ("/bare", "bare")):
        server, client = timings[path], client_ms[path]
        result[name] = {"server_p50_ms": round(statistics.median(server), 2),
                        "server_p99_ms": round(percentile(server, 0.99), 2),
                        "client_p50_ms": round(statistics.median(client), 2),
                        "client_p99_ms": round(percentile(client, 0.99), 2)}
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=50)
    parser.add_argument("--requests", type=int, default=2000)
    args = parser.parse_args()
    figures = asyncio.run(main(args.products, args.requests))
    print_table(["endpoint", "server p50 ms", "server p99 ms", "client p50 ms", "client p99 ms"], [
        [name, figures[key]["server_p50_ms"], figures[key]["server_p99_ms"], figures[key]["client_p50_ms"],
         figures[key]["client_p99_ms"]] for key, name in (("trip_page", f"/t/<slug>, {args.products} products"),
                                                           ("bare", "bare, same body size"))])
    print(f"\nweight: HTML {figures['html_bytes']:,} B + CSS {figures['css_bytes']:,} B = {figures['weight_kb']} KB"
          f" (target < 100 KB); card.jpg {figures['card_bytes']:,} B, drawn in {figures['card_cold_ms']} ms, "
          f"cached {figures['card_cached_ms']} ms")
    print(json.dumps(figures, indent=2))
