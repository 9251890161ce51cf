"""`python -m bot [serve|migrate|reconcile --once|ledger check|export|gateways|clients ...] [--config PATH]`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from datetime import date, datetime, time

from aiohttp import web

from bot import clients_cli, logs
from bot.app import build_runtime, build_web_app, secret_values
from bot.settings import ConfigError, Settings, load_settings
from services import books
from storage.db import Database
from storage.migrate import upgrade

log = logging.getLogger("bot")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Titip chat bot and payment server")
    parser.add_argument("--config", help="path to config.toml (default: ./config.toml or env BOT_CONFIG)")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="run the web server, channels, outbox and reconciler (default)")
    sub.add_parser("migrate", help="apply database migrations")
    reconcile = sub.add_parser("reconcile", help="check unfinished payments against the gateways")
    reconcile.add_argument("--once", action="store_true", required=True, help="one round, then exit")
    books = sub.add_parser("ledger", help="read the books").add_subparsers(dest="ledger_command", required=True)
    books.add_parser("check", help="exit 0 when every ledger invariant holds, 1 with the violations")
    export = books.add_parser("export", help="transfers as CSV on stdout")
    export.add_argument("--since", type=date.fromisoformat, help="YYYY-MM-DD (WIB): from that day on")
    report = books.add_parser("gateways", help="one WIB day per gateway and payment method, as CSV")
    report.add_argument("--day", type=date.fromisoformat, required=True, help="YYYY-MM-DD (WIB)")
    report.add_argument("--by-reference", action="store_true", help="one row per gateway reference")
    clients_cli.add_parser(sub)
    return parser


async def _migrate(settings: Settings) -> None:
    db = Database(settings.database.url)
    try:
        await upgrade(db)
    finally:
        await db.close()
    log.info("database migrated: %s", settings.database.url.split("@")[-1])


async def _reconcile_once(settings: Settings) -> int:
    runtime = build_runtime(settings)
    try:
        await upgrade(runtime.db)
        report = await runtime.reconciler.run_once()
        print(f"checked={report.checked} changed={report.changed} errors={report.errors} outcomes={report.outcomes}")
        return 0
    finally:
        await runtime.http.aclose()
        await runtime.db.close()


async def _ledger(settings: Settings, args: argparse.Namespace) -> int:
    db = Database(settings.database.url)
    try:
        await upgrade(db)
        if args.ledger_command == "check":
            problems = await books.check(db)
            for problem in problems:
                print(problem)
            print("ledger: ok" if not problems else f"ledger: {len(problems)} violation(s)",
                  file=sys.stderr if problems else sys.stdout)
            return 1 if problems else 0
        if args.ledger_command == "export":
            since = datetime.combine(args.since, time(0, 0), tzinfo=books.WIB) if args.since else None
            sys.stdout.write(await books.export(db, since))
            return 0
        sys.stdout.write(await books.gateways(db, args.day, by_reference=args.by_reference))
        return 0
    finally:
        await db.close()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    logs.configure(settings.log.level, settings.log.json_format, secret_values(settings))
    command = args.command or "serve"
    try:
        if command == "migrate":
            asyncio.run(_migrate(settings))
            return 0
        if command == "reconcile":
            return asyncio.run(_reconcile_once(settings))
        if command == "ledger":
            return asyncio.run(_ledger(settings, args))
        if command == "clients":
            return asyncio.run(clients_cli.run(settings, args))
        runtime = build_runtime(settings)
    except ConfigError as exc:
        log.error("configuration error: %s", exc)
        return 2
    log.info("serving on %s:%d (public URL %s)", settings.server.host, settings.server.port, settings.server.public_url)
    web.run_app(
        build_web_app(runtime), host=settings.server.host, port=settings.server.port, access_log=None, print=None
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
