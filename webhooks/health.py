"""GET /healthz (the database answers?) and GET /metrics (Prometheus text, from prometheus-client)."""

from __future__ import annotations

import time

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from services.errors import StorageUnavailable
from webhooks.deps import DEPS, WebDeps


@web.middleware
async def measure_requests(request: web.Request, handler):
    deps: WebDeps = request.app[DEPS]
    resource = request.match_info.route.resource
    # The route's pattern, never the raw path: a label per distinct URL would grow without bound.
    route = resource.canonical if resource is not None else "unmatched"
    status = 500
    started = time.perf_counter()
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        deps.metrics.requests.labels(request.method, route, str(status)).inc()
        deps.metrics.request_seconds.labels(request.method, route).observe(time.perf_counter() - started)


async def healthz(request: web.Request) -> web.Response:
    deps: WebDeps = request.app[DEPS]
    body = {"channels": deps.channels, "gateways": deps.gateways}
    try:
        await deps.stats.ping()
    except StorageUnavailable:
        return web.json_response({"status": "unavailable", "database": "unreachable", **body}, status=503)
    return web.json_response({"status": "ok", "database": "ok", **body})


async def metrics(request: web.Request) -> web.Response:
    deps: WebDeps = request.app[DEPS]
    return web.Response(body=deps.metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST,
                                                                 "X-Content-Type-Options": "nosniff"})


def setup(app: web.Application) -> None:
    app.middlewares.append(measure_requests)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
