"""`python -m bot clients add|list|rotate|disable|resend|settle`: the operator's side of the deposit API.

Each prints one JSON object per line (scripts read it) and exits 0, or prints why on stderr and exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from bot.app import build_clients
from bot.settings import KNOWN_GATEWAYS, Settings
from services.clients import summary_json
from services.clock import SystemClock
from services.errors import InsufficientFunds, LedgerConflict, NotFound, OperatorError
from storage.db import Database
from storage.migrate import upgrade


def add_parser(sub: Any) -> None:
    clients = sub.add_parser("clients", help="client bots of the deposit API").add_subparsers(
        dest="clients_command", required=True)
    add = clients.add_parser("add", help="a new client bot; prints its credentials once")
    add.add_argument("name")
    add.add_argument("--callback-url", required=True, help="where its deposit events are POSTed")
    add.add_argument("--require-signature", action="store_true", help="refuse requests that are not signed")
    add.add_argument("--worker", action="store_true",
                     help="speaks the top-up Worker's API (/deposit/*); its key is also the Worker's shared secret")
    add.add_argument("--origin", action="append", default=[], help="a browser origin allowed by CORS (repeatable)")
    add.add_argument("--min-amount", type=int)
    add.add_argument("--max-amount", type=int)
    add.add_argument("--gateways", help="comma-separated, within payments.gateways (default: all of them)")
    clients.add_parser("list", help="every client with what is owed to it")
    for name, text in (("rotate", "new credentials; the old ones stay valid for api.rotation_grace_hours"),
                       ("disable", "refuse its new deposits (reads, settlement and forwarding go on)")):
        clients.add_parser(name, help=text).add_argument("name")
    resend = clients.add_parser("resend", help="send a deposit's events to the client again")
    resend.add_argument("name")
    resend.add_argument("deposit_id")
    settle = clients.add_parser("settle", help="record that the operator paid the client outside Titip")
    settle.add_argument("name")
    settle.add_argument("--amount", type=int, required=True)
    settle.add_argument("--reference", required=True, help="your transfer's reference (once per reference)")


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 1


def _out(data: dict[str, Any]) -> None:
    print(json.dumps(data, ensure_ascii=False))


async def run(settings: Settings, args: argparse.Namespace) -> int:
    db = Database(settings.database.url)
    try:
        await upgrade(db)
        clients = build_clients(settings, db, SystemClock())
        command = args.clients_command
        try:
            if command == "add":
                gateways = [g.strip() for g in args.gateways.split(",") if g.strip()] if args.gateways else None
                unknown = [g for g in gateways or () if g not in KNOWN_GATEWAYS]
                if unknown:
                    return _fail(f"unknown gateway(s): {', '.join(unknown)}")
                if not args.callback_url.startswith(("http://", "https://")):
                    return _fail("--callback-url must be an http:// or https:// URL")
                credentials = await clients.add(
                    args.name, args.callback_url, worker=args.worker, require_signature=args.require_signature,
                    origins=args.origin, min_amount=args.min_amount, max_amount=args.max_amount, gateways=gateways)
                _out(credentials.as_json())
            elif command == "rotate":
                _out((await clients.rotate(args.name)).as_json())
            elif command == "list":
                for summary in await clients.summaries():
                    _out(summary_json(summary))
            elif command == "disable":
                changed = await clients.disable(args.name)
                _out({"client": args.name, "disabled": True, "changed": changed})
            elif command == "resend":
                queued = await clients.resend(args.name, args.deposit_id)
                if not queued:
                    return _fail(f"deposit {args.deposit_id} of {args.name} has no event to send yet")
                _out({"client": args.name, "deposit_id": args.deposit_id, "queued": queued})
            elif command == "settle":
                recorded = await clients.settle(args.name, args.amount, args.reference)
                _out({"client": args.name, "amount": args.amount, "reference": args.reference,
                      "recorded": recorded})
        except InsufficientFunds as exc:
            return _fail(f"{args.name} is owed only Rp{exc.balance:,}".replace(",", "."))
        except (OperatorError, NotFound) as exc:
            return _fail(str(exc))
        except LedgerConflict as exc:
            return _fail(f"{exc} — that reference was recorded with another amount")
        return 0
    finally:
        await db.close()
