"""The long crash run: hundreds of seeded kill -9 rounds (tests/crash.py), on SQLite and/or PostgreSQL.

    python bench/crash.py [--rounds 200] [--seed 1] [--db sqlite|postgresql|both]

Prints one line per round and a summary (violations, duplicate notices, restart time) plus JSON.
Exit status 1 if any invariant broke.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from callbacks import fresh_pg_database  # noqa: E402
from report import print_table  # noqa: E402

from tests.support.crash import CrashHarness, summarize  # noqa: E402


async def run(kind: str, rounds: int, seed: int, workdir: Path) -> dict:
    url = f"sqlite+aiosqlite:///{workdir}/crash.db" if kind == "sqlite" else await fresh_pg_database("titip_crash")
    results = []
    async with CrashHarness(workdir, url, seed=seed) as harness:
        for number in range(1, rounds + 1):
            result = await harness.round(number)
            results.append(result)
            print(f"{kind} round {number:>3}: killed after {result.killed_after_s:.2f}s, back in "
                  f"{result.restart_s:.2f}s, {result.payments} payments, {result.duplicates} duplicate notices, "
                  f"{len(result.violations)} violations", flush=True)
            for violation in result.violations[:5]:
                print(f"    {violation}", flush=True)
    return {"database": kind, **summarize(results)}


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    kinds = ["sqlite", "postgresql"] if args.db == "both" else [args.db]
    reports = []
    for kind in kinds:
        with tempfile.TemporaryDirectory() as tmp:
            reports.append(await run(kind, args.rounds, args.seed, Path(tmp)))
    print_table(("database", "rounds", "payments", "violations", "dup notices", "max restart s", "escrow orders",
                 "payouts"),
                [(r["database"], r["rounds"], r["payments"], r["violations"], r["duplicate_notices"],
                  r["restart_s_max"], " ".join(f"{k} {v}" for k, v in sorted(r["escrow_orders"].items())),
                  " ".join(f"{k} {v}" for k, v in sorted(r["payouts"].items())))
                 for r in reports])
    print(json.dumps(reports, indent=2))
    return 1 if any(r["violations"] for r in reports) else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
