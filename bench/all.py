"""Every benchmark in one command, each in its own process, then one table against the targets and JSON.

    python bench/all.py [--quick] [--out results.json]

Runs bench/callbacks.py (SQLite; PostgreSQL with 1 and 2 processes; ceilings: bare aiohttp endpoint and the
database's commit loop), bench/inbound.py (both channels, SQLite), bench/broadcast.py (platform limits on
and off), bench/fairness.py (a quiet user's reply latency while another floods, next to the same user
alone), bench/deposits.py (deposit API creates/s and forwards/s next to bare endpoints), bench/forgery.py
(10,000 forged requests per target), bench/crash.py (200 kill -9 rounds per database) and bench/growth.py (the
write path with 0, 1 and 10 million transfers in the ledger; not with --quick). --quick shrinks every run (a
smoke test of the harness, not figures to quote).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))

from report import print_table  # noqa: E402


def run(script: str, *args: str) -> tuple[dict | list, float]:
    """Run one benchmark script; its JSON report (printed last) and how long it took."""
    started = time.perf_counter()
    print(f"\n=== bench/{script} {' '.join(args)}", flush=True)
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT,
                          capture_output=True, text=True)
    lines = done.stdout.splitlines()
    start = next((i for i, line in enumerate(lines) if line in ("{", "[")), None)
    for line in lines[:start]:
        print(line)
    if start is None:
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"bench/{script} printed no report (exit {done.returncode})")
    return json.loads("\n".join(lines[start:])), time.perf_counter() - started


def mark(ok: bool) -> str:
    return "yes" if ok else "NO"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--crash-rounds", type=int, default=200, help="kill -9 rounds per database (200)")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    q = args.quick
    report: dict = {}
    report["callbacks"], _ = run("callbacks.py", *(["--payments", "3000", "--paced-seconds", "1"] if q else []))
    report["inbound"], _ = run("inbound.py", *(["--updates", "500"] if q else []))
    report["broadcast"], _ = run("broadcast.py", *(["--recipients", "100"] if q else []))
    report["fairness"], _ = run("fairness.py", *(["--quick"] if q else []))
    report["deposits"], _ = run("deposits.py", *(["--creates", "500", "--forwards", "1000"] if q else []))
    report["forgery"], _ = run("forgery.py", "--per-target", "200" if q else "10000")
    report["crash"], _ = run("crash.py", "--rounds", "2" if q else str(args.crash_rounds))
    if not q:  # seeding 10 million transfers takes minutes: the full run only
        report["growth"], _ = run("growth.py")

    rows: list[tuple[str, str, str, str, str]] = []  # measure, figure, ceiling (same run), ratio, target met
    http = report["callbacks"]["ceiling"]["per_second"]
    bare_p99 = report["callbacks"]["ceiling"]["paced"]["p99_ms"]
    by_setup = {(r["database"], r["processes"]): r["credited"]["per_second"] for r in report["callbacks"]["results"]}
    for r in report["callbacks"]["results"]:
        name = f"{r['database']} x{r['processes']}"
        rate = r["credited"]["per_second"]
        # Targets as ratios to the bare endpoint of the same run (its ceiling swings between runs): >= 40 %,
        # and on PostgreSQL two processes above one; ack p99 within 10 ms (SQLite) / 20 ms (PostgreSQL) of it.
        target = rate / http >= 0.40
        if r["database"] == "postgresql" and r["processes"] >= 2:
            target = target and rate > by_setup.get(("postgresql", 1), 0)
        rows.append((f"credited callbacks/s, {name}", f"{rate:,.0f}", f"http {http:,.0f}; commits "
                     f"{r['commit_ceiling']['per_second']:,.0f}/s", f"{rate / http:.0%} of http", mark(target)))
        slack = 10 if r["database"] == "sqlite" else 20
        rows.append((f"ack p50/p99 at {r['paced']['per_second']:,.0f}/s, {name}",
                     f"{r['paced']['p50_ms']} / {r['paced']['p99_ms']} ms",
                     f"bare endpoint at that rate: p99 {bare_p99} ms", f"+{r['paced']['p99_ms'] - bare_p99:.1f} ms",
                     mark(r["paced"]["p99_ms"] <= bare_p99 + slack)))
        rows.append((f"RSS idle / peak per process, {name}", f"{r['idle_rss_mb']} / {r['peak_rss_mb']} MB", "-",
                     "-", mark(r["peak_rss_mb"] <= 150)))
        rows.append((f"start -> /healthz 200, {name}", f"{r['startup_s']} s", "-", "-", mark(r["startup_s"] <= 2)))
        rows.append((f"balances exact, {name}", str(r["verify"]["exact"]), "-", "-", mark(r["verify"]["exact"])))
    inbound_ceiling = report["inbound"]["ceiling_per_second"]
    for r in report["inbound"]["results"]:
        wanted = 1000 if r["channel"] == "whatsapp" else 600
        rows.append((f"inbound {r['channel']} updates/s ({report['inbound']['database']})",
                     f"{r['per_second']:,.0f}", f"http {inbound_ceiling:,.0f}",
                     f"{r['per_second'] / inbound_ceiling:.0%}",
                     mark(r["replied"] == r["updates"] and r["per_second"] >= wanted)))
    for r in report["broadcast"]:
        if r["limits"]:
            rows.append(("broadcast pacing vs 30 msg/s limit", f"{r['per_second']} msg/s, {r['responses_429']} x 429",
                         "30 msg/s", f"{r['of_allowed']:.0%}", mark(r["of_allowed"] >= 0.95 and r["exact"])))
        else:
            rows.append(("broadcast engine, limits lifted", f"{r['per_second']:,.0f} msg/s", "-", "-",
                         mark(r["per_second"] >= 1000 and r["exact"])))
    for r in report["fairness"]:
        alone, flooded = r["baseline"], r["while_flooding"]
        rows.append((f"quiet {r['channel']} reply while another floods ({r['flood_messages']} msgs), p50/p99",
                     f"{flooded['p50_ms']} / {flooded['p99_ms']} ms",
                     f"alone: {alone['p50_ms']} / {alone['p99_ms']} ms",
                     "-", mark(flooded["p99_ms"] <= alone["p99_ms"] + 1000)))
    d = report["deposits"]
    rows.append((f"deposits created/s through the sandbox gateway ({d['database']})",
                 f"{d['creates']['per_second']:,.0f}", f"bare endpoint {d['bare_creates']['per_second']:,.0f}",
                 f"{d['creates']['per_second'] / d['bare_creates']['per_second']:.0%}",
                 mark(d["creates"]["per_second"] >= 500 and d["exact"])))
    rows.append((f"deposit events forwarded/s to a receiver process ({d['database']})",
                 f"{d['forwards']['per_second']:,.0f}", f"receiver alone {d['bare_forwards']['per_second']:,.0f}",
                 f"{d['forwards']['per_second'] / d['bare_forwards']['per_second']:.0%}",
                 mark(d["forwards"]["per_second"] >= 1000 and d["exact"])))
    forged = report["forgery"]["targets"]
    total = sum(t["requests"] for t in forged.values())
    accepted = sum(t["accepted"] for t in forged.values())
    errors = sum(t["server_errors"] for t in forged.values())
    rows.append((f"forged requests ({len(forged)} targets)", f"{total:,}: {accepted} accepted, {errors} 5xx", "-",
                 "-", mark(accepted == errors == 0 and not report["forgery"]["changed"])))
    for c in report["crash"]:
        rows.append((f"kill -9 rounds, {c['database']}", f"{c['rounds']}: {c['violations']} violations, "
                     f"{c['duplicate_notices']} duplicate notices", "-", "-", mark(c["violations"] == 0)))

    if "growth" in report:
        growth_http = report["growth"]["ceiling"]["per_second"]
        for r in report["growth"]["results"]:
            rows.append((f"credited/s with {r['history']:,} transfers already, {r['database']}",
                         f"{r['credited']['per_second']:,.0f}; p99 at ~1,000/s {r['paced']['p99_ms']} ms",
                         f"http {growth_http:,.0f} (seeded in {r['seed_s']} s)",
                         f"{r['credited']['per_second'] / growth_http:.0%}", "-"))
    heads = ("measure", "figure", "ceiling (same run)", "ratio", "target met")
    print_table(heads, rows)
    report["table"] = [dict(zip(heads, row, strict=True)) for row in rows]
    if args.out:
        args.out.write_text(json.dumps(report, indent=2))
    print(json.dumps(report["table"], indent=2))
    return 0 if all(row[4] != "NO" for row in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
