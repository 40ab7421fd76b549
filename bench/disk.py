#!/usr/bin/env python3
"""What a call costs on disk: the call log's bytes per call, on SQLite and PostgreSQL.

    bench/disk.py                         # release build, 50,000 calls into each database
    bench/disk.py --skip-build --calls 20000 --postgres postgres://postgres@127.0.0.1:5432/postgres

belroute serves bench/rules with bench/belroute.yaml (bench/e2e.py's callers and CRM: office
hours, withheld, abroad, `history`, a cached `sql` lookup), and oha sends CALLS calls at RATE a
second from CALLERS callers at random. Once every call has its row, belroute is stopped and the
script prints what the call log takes per call: for SQLite, each table's and index's pages
(`dbstat`) ÷ rows; for PostgreSQL (a database it creates, `belroute_disk`, on the server
`--postgres` names; left out without it), `pg_relation_size` of the table, its indexes and
TOAST, and of `caller_days`. Also the average length of the two JSON columns, `call_data` and
`trace`. The figures are the call log's own: SQLite's free pages and the WAL are not counted.

Needs Linux, python3 (with sqlite3's `dbstat`, as Debian's has), psql for PostgreSQL, and oha.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e  # noqa: E402 — the callers, the CRM, the build and the server's start are shared

BENCH = e2e.BENCH


def load(belroute: Path, oha: str, database: str, work: Path, args: argparse.Namespace,
         env: dict[str, str], bodies: Path, rows) -> int:
    """Serves on `database`, sends the calls, waits for their rows; returns the rows."""
    port = 18095
    url = f"http://127.0.0.1:{port}/hooks/{e2e.RULESET}"
    log_path = work / "belroute.log"
    proc = e2e.spawn(
        [str(belroute), "serve", "--listen", f"127.0.0.1:{port}", "--rules", str(BENCH / "rules"),
         "--config", str(BENCH / "belroute.yaml"), "--database", database],
        stdout=open(log_path, "wb"), stderr=subprocess.STDOUT, env=env, cwd=work,
    )
    try:
        first = e2e.wait_ready(url, e2e.FIXTURE.read_bytes(), proc, log_path)
        subprocess.run(
            [oha, "-n", str(args.calls), "-q", str(args.rate), "-c", "16", "--no-tui",
             "-m", "POST", "-H", "Content-Type: application/json", "-Z", str(bodies), url],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 120
        while rows() < args.calls + first:
            if time.monotonic() > deadline:
                raise e2e.BenchError(f"the call log has {rows()} rows, not {args.calls + first}")
            time.sleep(0.5)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
    return rows()


def sqlite_report(db: Path, n: int) -> list[str]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        page = conn.execute("PRAGMA page_size").fetchone()[0]
        sizes = dict(conn.execute(
            "SELECT name, SUM(pgsize) FROM dbstat WHERE name IN "
            "('calls', 'calls_by_uuid', 'calls_by_time', 'calls_by_caller', 'calls_by_caller_recent', 'caller_days') "
            "GROUP BY name"))
        lengths = conn.execute("SELECT AVG(LENGTH(call_data)), AVG(LENGTH(trace)) FROM calls").fetchone()
    finally:
        conn.close()
    lines = [f"SQLite ({page:,}-byte pages), {n:,} calls: **{sum(sizes.values()) / n:,.0f} bytes per call**"]
    lines += [f"- `{name}`: {size / n:,.0f} B" for name, size in sorted(sizes.items(), key=lambda kv: -kv[1])]
    lines.append(f"- average `call_data` {lengths[0]:,.0f} B, `trace` {lengths[1]:,.0f} B")
    return lines


def psql(url: str, sql: str) -> str:
    return subprocess.run(["psql", "-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", url, "-c", sql],
                          check=True, capture_output=True, text=True).stdout.strip()


def postgres_report(url: str, n: int) -> list[str]:
    row = psql(url, "SELECT pg_relation_size('calls'), pg_indexes_size('calls'), "
                    "pg_total_relation_size('calls') - pg_relation_size('calls') - pg_indexes_size('calls'), "
                    "pg_total_relation_size('caller_days'), "
                    "(SELECT AVG(LENGTH(call_data)) FROM calls), (SELECT AVG(LENGTH(trace)) FROM calls)")
    table, indexes, toast, days, data, trace = (float(v) for v in row.split("|"))
    total = table + indexes + toast + days
    return [
        f"PostgreSQL, {n:,} calls: **{total / n:,.0f} bytes per call**",
        f"- `calls`: {table / n:,.0f} B, its indexes {indexes / n:,.0f} B, TOAST {toast / n:,.0f} B",
        f"- `caller_days` with its key: {days / n:,.0f} B",
        f"- average `call_data` {data:,.0f} B, `trace` {trace:,.0f} B",
    ]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--calls", type=int, default=50_000)
    p.add_argument("--callers", type=int, default=10_000)
    p.add_argument("--rate", type=int, default=2_000, help="calls per second (default 2,000)")
    p.add_argument("--postgres", default=os.environ.get("BELROUTE_BENCH_POSTGRES_URL"),
                   help="a PostgreSQL server's URL (its maintenance database); the script creates belroute_disk there")
    p.add_argument("--skip-build", action="store_true")
    args = p.parse_args()
    oha = e2e.ensure_oha()
    target = e2e.build(args.skip_build, "release")
    belroute = target / "release/belroute"
    work = Path(tempfile.mkdtemp(prefix="belroute-disk-"))
    try:
        numbers = e2e.caller_numbers(args.callers)
        bodies = work / "calls.jsonl"
        e2e.write_bodies(bodies, numbers)
        e2e.create_crm(work / "crm.db", numbers)
        env = dict(os.environ, BELROUTE_BENCH_CRM_URL=f"sqlite://{work / 'crm.db'}?mode=ro")
        env.pop("BELROUTE_LOG_FORMAT", None)

        db = work / "calls.db"
        n = load(belroute, oha, f"sqlite://{db}", work, args, env, bodies, lambda: e2e.count_rows(db))
        report = sqlite_report(db, n)
        if args.postgres:
            psql(args.postgres, "DROP DATABASE IF EXISTS belroute_disk")
            psql(args.postgres, "CREATE DATABASE belroute_disk")
            pg = args.postgres.rsplit("/", 1)[0] + "/belroute_disk"
            n = load(belroute, oha, pg, work, args, env, bodies,
                     lambda: int(psql(pg, "SELECT COUNT(*) FROM calls") or 0))
            report += [""] + postgres_report(pg, n)
            psql(args.postgres, "DROP DATABASE IF EXISTS belroute_disk")
        print("\n".join(report))
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except e2e.BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
