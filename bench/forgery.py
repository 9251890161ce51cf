"""The large forgery run: N forged/garbage requests per gateway callback, messenger webhook and deposit API
create (tests/support/forgery.py).

    python bench/forgery.py [--per-target 10000] [--seed 1] [--db sqlite|postgresql]

Counts answers per target: accepted (2xx) and 5xx must both be 0; then checks that nothing changed (no
credits, no payment state, no users, no replies) and that each untouched legitimate request is accepted.
Prints a table and JSON; exit status 1 on any acceptance, 5xx or change.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from callbacks import fresh_pg_database  # noqa: E402
from report import print_table  # noqa: E402

from tests.support.forgery import ForgeryWorld, forge  # noqa: E402


async def run(per_target: int, seed: int, url: str, workdir: Path) -> dict:
    logging.disable(logging.WARNING)  # tens of thousands of "refused" warnings are the expected outcome
    rng = random.Random(seed)
    rows = {}
    async with ForgeryWorld(workdir, url) as world:
        for name, target in world.targets.items():
            requests = [forge(target, rng.randint, world.max_body_bytes) for _ in range(per_target)]
            statuses: Counter[int] = Counter()
            mutations: Counter[str] = Counter()
            gate = asyncio.Semaphore(32)

            async def one(request) -> None:
                async with gate:
                    statuses[await world.send(request)] += 1
                mutations.update(request.mutations)

            started = time.perf_counter()
            await asyncio.gather(*(one(r) for r in requests))
            seconds = time.perf_counter() - started
            rows[name] = {"requests": per_target, "accepted": sum(n for s, n in statuses.items() if 200 <= s < 300),
                          "server_errors": sum(n for s, n in statuses.items() if s >= 500),
                          "no_answer": statuses.get(0, 0), "statuses": dict(sorted(statuses.items())),
                          "mutations": dict(mutations.most_common()), "seconds": round(seconds, 1)}
        changed = await world.nothing_happened()
        legit = {name: await world.send(world.legitimate(name)) for name in world.targets}
    logging.disable(logging.NOTSET)
    return {"targets": rows, "changed": changed, "legitimate_answers": legit}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--per-target", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite+aiosqlite:///{tmp}/forgery.db" if args.db == "sqlite" else \
            await fresh_pg_database("titip_forgery")
        from storage.db import Database
        from storage.migrate import upgrade

        db = Database(url)
        await upgrade(db)
        await db.close()
        report = await run(args.per_target, args.seed, url, Path(tmp))
    print_table(("target", "requests", "accepted", "5xx", "no answer", "seconds", "statuses"),
                [(name, r["requests"], r["accepted"], r["server_errors"], r["no_answer"], r["seconds"], r["statuses"])
                 for name, r in report["targets"].items()])
    print(f"state changed by forgeries: {report['changed'] or 'nothing'}")
    print(f"untouched legitimate requests: {report['legitimate_answers']}")
    print(json.dumps(report, indent=2))
    bad = report["changed"] or any(r["accepted"] or r["server_errors"] for r in report["targets"].values()) \
        or any(not 200 <= status < 300 for status in report["legitimate_answers"].values())
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
