"""GET /healthz and GET /metrics (Prometheus text format)."""

from __future__ import annotations

from collections import Counter

from aiohttp import web

from services.errors import StorageUnavailable
from webhooks.deps import DEPS, WebDeps

REQUESTS = web.AppKey("requests", Counter)


@web.middleware
async def count_requests(request: web.Request, handler):
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    status = 500
    try:
        response = await handler(request)
        status = response.status
        return response
    except web.HTTPException as exc:
        status = exc.status
        raise
    finally:
        request.app[REQUESTS][(request.method, route, status)] += 1


async def healthz(request: web.Request) -> web.Response:
    deps: WebDeps = request.app[DEPS]
    body = {"channels": deps.channels, "gateways": deps.gateways}
    try:
        await deps.stats.ping()
    except StorageUnavailable:
        return web.json_response({"status": "unavailable", "database": "unreachable", **body}, status=503)
    return web.json_response({"status": "ok", "database": "ok", **body})


def _line(name: str, labels: dict[str, object], value: int | float) -> str:
    rendered = ",".join(f'{k}="{str(v)}"' for k, v in labels.items())
    return f"{name}{{{rendered}}} {value}" if rendered else f"{name} {value}"


async def metrics(request: web.Request) -> web.Response:
    deps: WebDeps = request.app[DEPS]
    lines = ["# HELP titip_http_requests_total HTTP requests by route and status.",
             "# TYPE titip_http_requests_total counter"]
    for (method, route, status), count in sorted(request.app[REQUESTS].items(), key=str):
        lines.append(_line("titip_http_requests_total", {"method": method, "route": route, "status": status}, count))
    try:
        snap = await deps.stats.snapshot()
        up = 1
    except StorageUnavailable:
        snap, up = None, 0
    lines += ["# HELP titip_database_up 1 when the database answers.", "# TYPE titip_database_up gauge",
              f"titip_database_up {up}"]
    if snap is not None:
        lines += ["# HELP titip_payments Payments by gateway and status.", "# TYPE titip_payments gauge"]
        lines += [_line("titip_payments", {"gateway": g, "status": s}, n) for (g, s), n in
                  sorted(snap.payments_by_status.items())]
        lines += ["# HELP titip_outbox_messages Outbox notices by channel and status.",
                  "# TYPE titip_outbox_messages gauge"]
        lines += [_line("titip_outbox_messages", {"channel": c, "status": s}, n) for (c, s), n in
                  sorted(snap.outbox_by_status.items())]
        lines += ["# HELP titip_users Known users.", "# TYPE titip_users gauge", f"titip_users {snap.users}",
                  "# HELP titip_balance_rupiah Sum of all balances.", "# TYPE titip_balance_rupiah gauge",
                  f"titip_balance_rupiah {snap.balance_total}",
                  "# HELP titip_ledger_rupiah Sum of all ledger entries (equals the balances).",
                  "# TYPE titip_ledger_rupiah gauge", f"titip_ledger_rupiah {snap.ledger_total}",
                  "# HELP titip_credited_rupiah Sum of all top-up credits.", "# TYPE titip_credited_rupiah gauge",
                  f"titip_credited_rupiah {snap.credited_total}"]
    return web.Response(text="\n".join(lines) + "\n", content_type="text/plain", charset="utf-8",
                        headers={"X-Content-Type-Options": "nosniff"})


def setup(app: web.Application) -> None:
    app[REQUESTS] = Counter()
    app.middlewares.append(count_requests)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics)
