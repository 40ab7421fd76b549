#!/usr/bin/env python3
"""A long run at a constant rate: does belroute's cost per call stay flat as its call log grows?

    bench/soak.py                         # release build, then 20 minutes at 1,000 calls/s
    bench/soak.py --skip-build --minutes 5 --rate 500

belroute serves bench/rules with bench/belroute.yaml (default settings, SQLite call log, the
cached `sql` lookup on a SQLite CRM this script creates, `history` on the call log), not pinned
to a CPU, as an operator runs it. oha sends `--rate` calls a second for `--minutes`
(`-q RATE --latency-correction`, so a server that falls behind shows in the latencies), each from
one of `--callers` Dutch callers at random (bench/e2e.py's callers and CRM). Every `--every`
seconds the script prints what the last interval cost: the server's CPU time per call (from
/proc, over the calls the call log wrote in it), calls written per second, the latency of one
probe call, the resident memory and the call log's rows. At the end: oha's latencies over the
whole run (corrected for coordinated omission), errors, and the call log's rows against the
calls answered. The table goes to target/bench/soak-<date>.md as well.

Needs Linux, python3 and oha (bench/e2e.py installs it when missing).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e  # noqa: E402 — the callers, the CRM, the build and /proc readers are shared

ROOT, BENCH = e2e.ROOT, e2e.BENCH


def rss_kib(pid: int) -> int:
    return e2e.proc_status(pid, "VmRSS")


def probe_ms(port: int, body: bytes) -> float:
    """One call on a new connection, as a caller arriving now would see it."""
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", f"/hooks/{e2e.RULESET}", body, {"Content-Type": "application/json"})
        conn.getresponse().read()
    finally:
        conn.close()
    return (time.perf_counter() - started) * 1000


def prefill(db: Path, rows: int, numbers: list[str], rate: int) -> None:
    """`rows` copies of the call log's first row, from the callers at random, received at `rate`
    a second up to now: the call log of a server that has already run rows/rate seconds."""
    import sqlite3

    conn = sqlite3.connect(db, timeout=60)
    try:
        conn.execute("CREATE TEMP TABLE numbers (i INTEGER PRIMARY KEY, n TEXT)")
        conn.executemany("INSERT INTO numbers VALUES (?, ?)", enumerate(numbers))
        now = int(time.time() * 1000)
        conn.execute(
            f"""
            WITH RECURSIVE k(i, c) AS (
                SELECT 1, 0 UNION ALL
                SELECT i + 1, abs(random()) % {len(numbers)} FROM k WHERE i < {rows})
            INSERT INTO calls (uuid, received_at, ruleset, version, caller_raw, caller_e164, route,
                               rule, reason, micros, call_data, trace)
            SELECT printf('%08x-718d-11ed-88ee-%012d', abs(random()) % 4294967296, k.i),
                   {now} - ({rows} - k.i) * 1000 / {rate}, t.ruleset, t.version, numbers.n,
                   '+' || numbers.n, t.route, t.rule, t.reason, t.micros, t.call_data, t.trace
            FROM k JOIN numbers ON numbers.i = k.c,
                 (SELECT * FROM calls ORDER BY id LIMIT 1) t
            """
        )
        conn.commit()
    finally:
        conn.close()


def decided(db: Path, after_id: int) -> str:
    """How long belroute took over the run's calls by its own clock (`micros`: from the request
    read to the answer), and its lookups' share: what is belroute's own and what is waiting
    elsewhere (a CPU, the network, oha)."""
    import sqlite3

    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        def pct(values: list[int]) -> str:
            values.sort()
            if not values:
                return "none"
            at = lambda q: values[min(len(values) - 1, int(q * len(values)))]  # noqa: E731
            return f"p50 {at(0.5):,} µs, p99 {at(0.99):,} µs, p99.9 {at(0.999):,} µs, max {values[-1]:,} µs"

        micros = [r[0] for r in conn.execute("SELECT micros FROM calls WHERE id > ?", (after_id,))]
        parts = [f"belroute's own time per call (`micros`) over the run: {pct(micros)}"]
        for name in ("invoices", "history"):
            looked = [
                r[0] for r in conn.execute(
                    "SELECT json_extract(l.value, '$.micros') FROM calls, json_each(calls.trace, '$.lookups') l "
                    "WHERE calls.id > ? AND json_extract(l.value, '$.name') = ?", (after_id, name))
                if r[0] is not None
            ]
            parts.append(f"lookup `{name}`: {pct(looked)}")
        return "\n".join(parts)
    finally:
        conn.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=20.0)
    p.add_argument("--rate", type=int, default=1000, help="calls per second (default 1,000)")
    p.add_argument("--callers", type=int, default=10_000)
    p.add_argument("--every", type=int, default=30, help="seconds per printed interval")
    p.add_argument("--prefill", type=int, default=0,
                   help="rows put in the call log before the run, as if it had run that long already")
    p.add_argument("--skip-build", action="store_true")
    args = p.parse_args()
    oha = e2e.ensure_oha()
    target = e2e.build(args.skip_build, "release")
    belroute_bin = target / "release/belroute"
    stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    out = target / "bench" / f"soak-{stamp}.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="belroute-soak-"))
    lines: list[str] = []

    def say(line: str) -> None:
        print(line, flush=True)
        lines.append(line)

    proc = None
    try:
        numbers = e2e.caller_numbers(args.callers)
        bodies_path = work / "calls.jsonl"
        bodies = e2e.write_bodies(bodies_path, numbers)
        e2e.create_crm(work / "crm.db", numbers)
        env = dict(os.environ, BELROUTE_BENCH_CRM_URL=f"sqlite://{work / 'crm.db'}?mode=ro")
        env.pop("BELROUTE_LOG_FORMAT", None)
        db = work / "calls.db"
        port = 18090
        url = f"http://127.0.0.1:{port}/hooks/{e2e.RULESET}"
        log = open(work / "belroute.log", "wb")
        serve = [str(belroute_bin), "serve", "--listen", f"127.0.0.1:{port}", "--rules", str(BENCH / "rules"),
                 "--config", str(BENCH / "belroute.yaml"), "--database", f"sqlite://{db}"]
        proc = e2e.spawn(serve, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
        e2e.wait_ready(url, e2e.FIXTURE.read_bytes(), proc, work / "belroute.log")
        if args.prefill:
            # One real row (the start-up check's) is the template; the server is stopped while
            # the copies go in, then started again on the grown call log.
            e2e.settle(db, 1)
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=120)
            filled = time.monotonic()
            prefill(db, args.prefill, numbers, args.rate)
            say(f"prefilled the call log with {args.prefill:,} rows in {time.monotonic() - filled:.0f} s")
            proc = e2e.spawn(serve, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=work)
            e2e.wait_ready(url, e2e.FIXTURE.read_bytes(), proc, work / "belroute.log")
        probe = bodies[0]
        say(f"# belroute soak, {dt.datetime.now():%Y-%m-%d %H:%M} UTC: {args.rate:,} calls/s for "
            f"{args.minutes:g} min, {args.callers:,} callers, bench/rules, default settings, not pinned")
        say("")
        say("| time | written/s | CPU per call | probe call | RSS | call log rows |")
        say("| ---: | ---: | ---: | ---: | ---: | ---: |")
        oha_out = work / "oha.json"
        load = subprocess.Popen(
            [oha, "-z", f"{int(args.minutes * 60)}s", "-q", str(args.rate), "--latency-correction",
             "-c", "32", "--no-tui", "--output-format", "json", "--wait-ongoing-requests-after-deadline",
             "-m", "POST", "-H", "Content-Type: application/json", "-Z", str(bodies_path), url],
            stdout=open(oha_out, "wb"), stderr=subprocess.DEVNULL,
        )
        first_id = e2e.count_rows(db) if not args.prefill else args.prefill + 1
        started = time.monotonic()
        cpu0 = e2e.proc_cpu_seconds(proc.pid)
        written0 = e2e.scrape(port).get("belroute_call_log_written_total", 0.0)
        per_interval: list[float] = []
        while load.poll() is None:
            time.sleep(args.every)
            cpu1 = e2e.proc_cpu_seconds(proc.pid)
            written1 = e2e.scrape(port).get("belroute_call_log_written_total", written0)
            calls = written1 - written0
            per_call = (cpu1 - cpu0) / calls * 1e6 if calls > 0 else float("nan")
            # A whole interval of load (not the last moments after oha stopped).
            if calls >= args.rate * args.every / 2:
                per_interval.append(per_call)
            say(f"| {time.monotonic() - started:4.0f} s | {calls / args.every:,.0f} | {per_call:,.0f} µs | "
                f"{probe_ms(port, probe):.1f} ms | {rss_kib(proc.pid) / 1024:.0f} MiB | {int(written1):,} |")
            cpu0, written0 = cpu1, written1
        result = json.loads(oha_out.read_text())
        summary, pct = result.get("summary", {}), result.get("latencyPercentiles", {})
        codes = result.get("statusCodeDistribution", {})
        answered = int(codes.get("200", 0))
        ms = lambda v: (v or 0.0) * 1000  # noqa: E731 — oha reports seconds
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        rows = e2e.count_rows(db)
        say("")
        say(f"oha over the whole run (corrected): {summary.get('requestsPerSec', 0):,.0f} answers/s, "
            f"p50 {ms(pct.get('p50')):.1f} ms, p99 {ms(pct.get('p99')):.1f} ms, p99.9 {ms(pct.get('p99.9')):.1f} ms, "
            f"max {ms(summary.get('slowest')):.1f} ms; status codes {codes}; errors {result.get('errorDistribution', {})}")
        say(f"call log: {rows:,} rows for {answered:,} calls answered 200 (plus the probes and the start-up check)")
        say(decided(db, first_id))
        if len(per_interval) >= 2:
            first, last = per_interval[0], per_interval[-1]
            say(f"CPU per call: first whole interval {first:,.0f} µs, last {last:,.0f} µs ({last / first:.2f}×)")
            # One interval swings by ±15 % on a shared 2-vCPU machine: the first and last
            # quarters of the run, averaged, say more about a trend.
            quarter = max(1, len(per_interval) // 4)
            head, tail = per_interval[:quarter], per_interval[-quarter:]
            mean = lambda v: sum(v) / len(v)  # noqa: E731
            say(f"CPU per call: first {quarter} intervals {mean(head):,.0f} µs, last {quarter} {mean(tail):,.0f} µs "
                f"({mean(tail) / mean(head):.2f}×)")
        out.write_text("\n".join(lines) + "\n")
        print(f"written to {out}")
        return 0
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except e2e.BenchError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)
