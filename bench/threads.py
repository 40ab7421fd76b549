#!/usr/bin/env python3
"""Where a call's CPU goes: belroute's CPU per call by thread, user and system, at fixed rates.

    bench/threads.py                         # release build, then 1,000/s and 2,500/s, 10 s each
    bench/threads.py --skip-build --rates 500,1000,2500 --duration 20
    bench/threads.py --skip-build --config my-belroute.yaml   # another configuration of bench/rules

Starts belroute as bench/e2e.py does (bench/rules with bench/belroute.yaml, a SQLite CRM this
script creates, a new SQLite call log, `--workers 1`, pinned to --server-cpu), calls each of the
callers once to warm the caches, then for each rate runs oha (`-q RATE --latency-correction`,
pinned to --load-cpu) and reads every thread's user and system time and context switches from
/proc/PID/task/*/{stat,status} before and after. Prints a Markdown table of microseconds of CPU
per answered call for each thread name (threads of one name added up), the voluntary context
switches per call (how often a thread went to sleep and had to be woken), oha's p50 and p99, and
belroute's `history` and lookup-cache counters (so that a run where memory or the cache did not
answer is seen).

`bench/e2e.py` gives the whole server's CPU per call; this script says which thread spends it.
Needs Linux, taskset, python3 (standard library) and oha (installed as e2e.py does).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import e2e  # noqa: E402 — the same callers, bodies, CRM and helpers

PORT = 18290


def threads(pid: int) -> dict[str, tuple[str, int, int, int]]:
    """Per thread id: (name, voluntary switches, user ticks, system ticks)."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            name = Path(f"/proc/{pid}/task/{tid}/comm").read_text().strip()
            status = Path(f"/proc/{pid}/task/{tid}/status").read_text()
            voluntary = int(re.search(r"^voluntary_ctxt_switches:\s+(\d+)", status, re.M).group(1))
            stat = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
            out[tid] = (name, voluntary, int(stat[11]), int(stat[12]))
        except (OSError, AttributeError):
            pass  # the thread ended meanwhile
    return out


def counters(port: int) -> dict[str, float]:
    text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r'^(belroute_(?:history_answers_total|lookup_cache_hits_total|lookup_requests_total)'
                     r'(?:\{[^}]*\})?) ([0-9.eE+-]+)$', line)
        if m:
            out[m.group(1)] = float(m.group(2))
    return out


def measure(args, pid: int, oha: str, bodies_path: Path, rate: int) -> list[str]:
    before, metrics_before = threads(pid), counters(PORT)
    raw = subprocess.run(
        ["taskset", "-c", str(args.load_cpu), oha, "-z", f"{args.duration}s", "-q", str(rate),
         "--latency-correction", "-c", "32", "--worker-threads", "1", "--no-tui",
         "--output-format", "json", "-m", "POST", "-H", "Content-Type: application/json",
         "-Z", str(bodies_path), f"http://127.0.0.1:{PORT}/hooks/{e2e.RULESET}"],
        capture_output=True, text=True, check=True,
    ).stdout
    after, metrics_after = threads(pid), counters(PORT)
    data = json.loads(raw[raw.index("{"):])
    answered = int(data.get("statusCodeDistribution", {}).get("200", 0))
    if not answered:
        raise e2e.BenchError(f"no call was answered with 200 at {rate}/s")
    tick_us = 1e6 / e2e.CLK_TCK
    by_name: dict[str, list[float]] = {}
    for tid, (name, voluntary, user, system) in after.items():
        _, v0, u0, s0 = before.get(tid, (name, 0, 0, 0))
        row = by_name.setdefault(name, [0.0, 0.0, 0.0])
        row[0] += (user - u0) * tick_us / answered
        row[1] += (system - s0) * tick_us / answered
        row[2] += (voluntary - v0) / answered
    pct = data["latencyPercentiles"]
    lines = [
        f"#### {rate:,}/s for {args.duration} s: {answered:,} answered, p50 {pct['p50'] * 1000:.2f} ms, "
        f"p99 {pct['p99'] * 1000:.2f} ms",
        "",
        "| thread | user µs per call | system µs per call | woken per call |",
        "| --- | ---: | ---: | ---: |",
    ]
    total = [0.0, 0.0]
    for name, (user, system, woken) in sorted(by_name.items(), key=lambda kv: -(kv[1][0] + kv[1][1])):
        if user + system < 0.05 and woken < 0.005:
            continue  # a thread that did nothing to speak of
        total[0] += user
        total[1] += system
        lines.append(f"| `{name}` | {user:.1f} | {system:.1f} | {woken:.2f} |")
    lines.append(f"| all | {total[0]:.1f} | {total[1]:.1f} | |")
    moved = {k: v - metrics_before.get(k, 0) for k, v in metrics_after.items() if v != metrics_before.get(k, 0)}
    lines += ["", "Counters over the run: " + ", ".join(f"`{k}` +{v:,.0f}" for k, v in sorted(moved.items())), ""]
    return lines


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rates", default="1000,2500", help="fixed rates, calls/s (default 1000,2500)")
    p.add_argument("--duration", type=int, default=10, help="seconds per rate (default 10)")
    p.add_argument("--callers", type=int, default=10_000, help="distinct callers (default 10,000)")
    p.add_argument("--config", type=Path, default=e2e.BENCH / "belroute.yaml",
                   help="belroute.yaml for bench/rules (default bench/belroute.yaml)")
    p.add_argument("--server-cpu", type=int, default=0)
    p.add_argument("--load-cpu", type=int, default=1)
    p.add_argument("--skip-build", action="store_true", help="use the release binary already built")
    args = p.parse_args()
    rates = [int(r) for r in args.rates.split(",") if r]
    target = e2e.build(args.skip_build, "release")
    oha = e2e.ensure_oha()
    with tempfile.TemporaryDirectory(prefix="belroute-threads-") as tmp:
        work = Path(tmp)
        numbers = e2e.caller_numbers(args.callers)
        e2e.create_crm(work / "crm.db", numbers)
        bodies_path = work / "calls.jsonl"
        bodies = e2e.write_bodies(bodies_path, numbers)
        env = dict(os.environ, BELROUTE_BENCH_CRM_URL=f"sqlite://{work / 'crm.db'}?mode=ro")
        cmd = ["taskset", "-c", str(args.server_cpu), str(target / "release/belroute"), "serve",
               "--listen", f"127.0.0.1:{PORT}", "--workers", "1", "--rules", str(e2e.BENCH / "rules"),
               "--config", str(args.config), "--database", f"sqlite://{work / 'calls.db'}"]
        with open(work / "server.log", "wb") as server_log:
            proc = e2e.spawn(cmd, stdout=server_log, stderr=subprocess.STDOUT, env=env, cwd=e2e.ROOT)
            try:
                url = f"http://127.0.0.1:{PORT}/hooks/{e2e.RULESET}"
                e2e.wait_ready(url, e2e.FIXTURE.read_bytes(), proc, work / "server.log")
                e2e.log(f"warming up with {len(bodies):,} callers")
                expected = ["finance" if e2e.has_open_invoices(n) else "receptie" for n in numbers]
                e2e.warm_up("127.0.0.1", PORT, f"/hooks/{e2e.RULESET}", bodies, expected)
                time.sleep(1)
                commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=e2e.ROOT,
                                        capture_output=True, text=True).stdout.strip()
                out = [f"### Where a call's CPU goes: {time.strftime('%Y-%m-%d %H:%M', time.gmtime())} UTC", "",
                       f"- belroute {commit}, release build, bench/rules with {args.config.name},"
                       f" {args.callers:,} warmed callers, server on CPU {args.server_cpu}, oha on CPU"
                       f" {args.load_cpu}.", ""]
                for rate in rates:
                    e2e.log(f"{rate:,}/s for {args.duration} s")
                    out += measure(args, proc.pid, oha, bodies_path, rate)
                    time.sleep(1)
                print("\n".join(out))
            finally:
                e2e.stop(proc, "belroute")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except e2e.BenchError as e:
        print(f"bench/threads.py: {e}", file=sys.stderr)
        sys.exit(1)
