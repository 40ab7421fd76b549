#!/usr/bin/env python3
"""Instructions per call: belroute against the bare actix route (the ceiling), under callgrind.

    bench/callgrind.py                    # release build, then the three servers below
    bench/callgrind.py --skip-build --calls 1000 --top 30

Runs, one after the other, each under `valgrind --tool=callgrind --trace-children=yes` (so a
rule's worker process would be counted too):

- **ceiling**: `bench/ceiling`, the bare actix-web route that parses the same JSON;
- **ten rules**: belroute on `bench/ten` (ten everyday rules, no lookups), SQLite call log;
- **bench/rules**: belroute on `bench/rules` with `bench/belroute.yaml` (office hours, withheld,
  abroad, `history` on the call log, a cached `sql` lookup on a SQLite CRM this script creates);
- **bench/rules, second call** (`again`): the same, but the warm-up first calls once from each
  measured caller, so every measured call is a caller's second: the `sql` lookup's cache and the
  history kept in memory answer, as for callers who call again in steady operation.

For each: a warm-up (WARM calls from other callers), then the counters are zeroed
(`callgrind_control -z`), then CALLS calls over one keep-alive connection, each from a different
Dutch mobile caller (`316…`, the form Callvoip sends) that the server has not seen before; then
belroute's call log is waited for (every call has its row) and the counts are dumped
(`callgrind_control -d`). Instructions per call = the dump's total ÷ CALLS, over every process
the server started. Prints instructions per call, the ratio to the ceiling, and the top entries
of each profile (inclusive and self); the dumps stay in target/bench/callgrind-<date>/ for
`callgrind_annotate`.

Counts are exact for a given binary and input whatever else the machine does (up to a few
thousand instructions of timers and thread hand-offs per run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
FIXTURE = ROOT / "tests/fixtures/callvoip/post-example.json"
FIRST_MOBILE = 20_000_000  # measured callers are 31 6 20000000 …: Dutch mobiles
FIRST_WARM = 30_000_000  # warm-up callers: other mobiles


def log(msg: str) -> None:
    print(f"[{dt.datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def body(number: str, i: int) -> bytes:
    call = json.loads(FIXTURE.read_text())
    call["caller_number"] = number
    call["uuid"] = f"{call['uuid'][:-12]}{i:012d}"
    return json.dumps(call, separators=(",", ":")).encode()


def create_crm(path: Path, numbers: list[str]) -> None:
    """bench/e2e.py's CRM: every caller a customer, half of them owing money."""
    db = sqlite3.connect(path)
    db.executescript(
        """
        CREATE TABLE llx_societe (rowid INTEGER PRIMARY KEY, nom TEXT, phone_normalized TEXT);
        CREATE INDEX llx_societe_phone ON llx_societe (phone_normalized);
        CREATE TABLE llx_facture (rowid INTEGER PRIMARY KEY, fk_soc INTEGER, total_ttc REAL,
                                  paye INTEGER, fk_statut INTEGER);
        CREATE INDEX llx_facture_soc ON llx_facture (fk_soc);
        """
    )
    for i, number in enumerate(numbers):
        db.execute("INSERT INTO llx_societe VALUES (?, ?, ?)", (i, f"Klant {i}", f"+{number}"))
        db.execute("INSERT INTO llx_facture (fk_soc, total_ttc, paye, fk_statut) VALUES (?, 80.0, 1, 2)", (i,))
        if int(number) % 2 == 1:
            db.execute("INSERT INTO llx_facture (fk_soc, total_ttc, paye, fk_statut) VALUES (?, 121.0, 0, 1)", (i,))
    db.commit()
    db.close()


def post_all(port: int, bodies: list[bytes]) -> dict[str, int]:
    """POSTs every body over one keep-alive connection; returns how often each route came."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    routes: dict[str, int] = {}
    for b in bodies:
        conn.request("POST", "/hooks/main", b, {"Content-Type": "application/json"})
        response = conn.getresponse()
        answer = response.read().decode()
        if response.status != 200:
            raise SystemExit(f"answer {response.status} {answer!r}")
        routes[answer] = routes.get(answer, 0) + 1
    conn.close()
    return routes


def wait_ready(port: int, proc: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the server exited ({proc.returncode}); its log:\n{log_path.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.5)
    raise SystemExit(f"no answer on port {port} within 300 s")


def rows(db: Path) -> int:
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as c:
            return c.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    except sqlite3.Error:
        return -1


def settle(db: Path, expected: int) -> None:
    """Waits until the call log holds `expected` rows (its writer runs after the answers)."""
    deadline = time.monotonic() + 300
    while rows(db) < expected:
        if time.monotonic() > deadline:
            raise SystemExit(f"the call log has {rows(db)} rows, not {expected}")
        time.sleep(0.5)


def pids(out: Path) -> list[int]:
    """The processes callgrind follows for this server: one output file each (cg.PID)."""
    return sorted({int(m.group(1)) for f in out.iterdir() if (m := re.fullmatch(r"cg\.(\d+)", f.name))})


def control(option: str, out: Path) -> None:
    for pid in pids(out):
        subprocess.run(["callgrind_control", option, str(pid)], check=False, capture_output=True)


def total(path: Path) -> int:
    text = path.read_text(errors="replace")
    found = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
    return int(found.group(1)) if found else 0


# Frames every call passes through (threads, the runtimes' polling): left out of the lists.
FRAMES = re.compile(
    r"PROGRAM TOTALS|clone\.S|pthread_create|thread_start|lifecycle\.rs|__rust_begin_short_backtrace"
    r"|tokio::runtime|tokio-[\d.]+/src/runtime|actix_service::and_then|AndThenServiceResponse"
    r"|StreamService|Dispatcher<|core::future::future::Future>::poll \[|catch_unwind|handler_service"
    r"|HttpServiceFactory>::register|AssertUnwindSafe|Timeout<T>"
)


def top(dump: Path, inclusive: bool, n: int) -> str:
    """The profile's top entries, `cost (share)  function`, without the paths of the sources."""
    result = subprocess.run(
        ["callgrind_annotate", f"--inclusive={'yes' if inclusive else 'no'}", "--threshold=100", str(dump)],
        capture_output=True, text=True, check=False,
    )
    lines = []
    for line in result.stdout.splitlines():
        found = re.match(r"^\s*([\d,]+) \(\s*([\d.]+)%\)\s+(.*)$", line)
        if not found or FRAMES.search(found.group(3)):
            continue
        # `path/file.rs:function [binary]` → `function`
        name = re.sub(r" \[[^\]]*\]$", "", found.group(3))
        name = name.split(":", 1)[1] if re.match(r"^[^ ]*\.(rs|c|S|h):", name) else name
        lines.append(f"{found.group(1):>13} {found.group(2):>5}%  {name[:160]}")
        if len(lines) == n:
            break
    return "\n".join(lines)


def run(name: str, cmd: list[str], port: int, env: dict[str, str], out: Path, warm: list[bytes],
        measured: list[bytes], db: Path | None) -> tuple[float, list[Path], dict[str, int]]:
    out.mkdir(parents=True)
    log_path = out / "server.log"
    full = ["valgrind", "--tool=callgrind", "--trace-children=yes", f"--callgrind-out-file={out}/cg.%p", *cmd]
    log(f"{name}: {' '.join(full)}")
    with open(log_path, "wb") as server_log:
        proc = subprocess.Popen(full, stdout=server_log, stderr=subprocess.STDOUT, env=env, cwd=ROOT,
                                start_new_session=True)
        try:
            wait_ready(port, proc, log_path)
            post_all(port, warm)
            if db is not None:
                settle(db, len(warm))
            control("-z", out)
            started = time.monotonic()
            routes = post_all(port, measured)
            if db is not None:
                settle(db, len(warm) + len(measured))
            log(f"{name}: {len(measured):,} calls in {time.monotonic() - started:.1f} s: {routes}")
            control("-d", out)
            time.sleep(1)
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=120)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    dumps = sorted(f for f in out.iterdir() if re.fullmatch(r"cg\.\d+\.1", f.name))
    if not dumps:
        raise SystemExit(f"{name}: callgrind wrote no dump; see {log_path}")
    return sum(total(d) for d in dumps) / len(measured), dumps, routes


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--calls", type=int, default=1000, help="measured calls, one caller each (default 1,000)")
    p.add_argument("--warm", type=int, default=200, help="warm-up calls before the counters are zeroed (default 200)")
    p.add_argument("--top", type=int, default=25, help="profile entries shown per server (default 25)")
    p.add_argument("--skip-build", action="store_true", help="use the release binaries already built")
    p.add_argument("--only", choices=["ceiling", "ten", "rules", "again"], action="append",
                   help="measure only these (repeatable; default all four)")
    p.add_argument("--out", type=Path, default=None, help="where the dumps go (default target/bench/callgrind-<date>)")
    args = p.parse_args()
    for tool in ("valgrind", "callgrind_control", "callgrind_annotate", "cargo"):
        if not shutil.which(tool):
            raise SystemExit(f"`{tool}` is needed (apt-get install valgrind)")
    if not args.skip_build:
        log("cargo build --release -p belroute -p belroute-bench-ceiling")
        subprocess.run(["cargo", "build", "--release", "--locked", "-p", "belroute", "-p", "belroute-bench-ceiling"],
                       cwd=ROOT, check=True)
    meta = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    target = Path(json.loads(meta.stdout)["target_directory"])
    belroute, ceiling = target / "release/belroute", target / "release/belroute-bench-ceiling"
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT, capture_output=True,
                            text=True).stdout.strip()
    out = args.out or target / "bench" / f"callgrind-{dt.datetime.now():%Y-%m-%d-%H%M%S}"
    out.mkdir(parents=True, exist_ok=True)
    only = args.only or ["ceiling", "ten", "rules", "again"]

    measured_numbers = [f"316{FIRST_MOBILE + i}" for i in range(args.calls)]
    warm_numbers = [f"316{FIRST_WARM + i}" for i in range(args.warm)]
    warm = [body(n, 900_000 + i) for i, n in enumerate(warm_numbers)]
    measured = [body(n, i) for i, n in enumerate(measured_numbers)]

    work = Path(tempfile.mkdtemp(prefix="belroute-callgrind-"))
    results: dict[str, float] = {}
    profiles: dict[str, list[Path]] = {}
    try:
        create_crm(work / "crm.db", measured_numbers + warm_numbers)
        env = dict(os.environ, BELROUTE_BENCH_CRM_URL=f"sqlite://{work / 'crm.db'}?mode=ro")
        env.pop("BELROUTE_LOG_FORMAT", None)
        servers = {
            "ceiling": ([str(ceiling), "127.0.0.1:18281"], 18281, None),
            "ten": ([str(belroute), "serve", "--listen", "127.0.0.1:18280", "--workers", "1",
                     "--rules", str(BENCH / "ten"), "--config", str(BENCH / "belroute.yaml"),
                     "--database", f"sqlite://{work / 'ten.db'}"], 18280, work / "ten.db"),
            "rules": ([str(belroute), "serve", "--listen", "127.0.0.1:18282", "--workers", "1",
                       "--rules", str(BENCH / "rules"), "--config", str(BENCH / "belroute.yaml"),
                       "--database", f"sqlite://{work / 'rules.db'}"], 18282, work / "rules.db"),
            "again": ([str(belroute), "serve", "--listen", "127.0.0.1:18283", "--workers", "1",
                       "--rules", str(BENCH / "rules"), "--config", str(BENCH / "belroute.yaml"),
                       "--database", f"sqlite://{work / 'again.db'}"], 18283, work / "again.db"),
        }
        # `again`'s warm-up: each measured caller once (other call ids), then the usual warm-up.
        first_calls = [body(n, 800_000 + i) for i, n in enumerate(measured_numbers)] + warm
        for name in only:
            cmd, port, db = servers[name]
            per_call, dumps, _ = run(name, cmd, port, env, out / name, first_calls if name == "again" else warm,
                                     measured, db)
            results[name] = per_call
            profiles[name] = dumps
    finally:
        shutil.rmtree(work, ignore_errors=True)

    labels = {"ceiling": "ceiling (bare actix route)", "ten": "belroute, ten rules, no lookups",
              "rules": "belroute, bench/rules (sql + history)",
              "again": "belroute, bench/rules, each caller's second call"}
    lines = [
        f"instructions per call (callgrind, counters zeroed after {args.warm:,} warm-up calls; "
        f"{args.calls:,} calls over one keep-alive connection, each from a new Dutch mobile caller, "
        f"but for `again`); "
        f"belroute {commit}",
        "",
        "| server | instructions per call | ÷ ceiling |",
        "| --- | ---: | ---: |",
    ]
    for name in only:
        ratio = f"{results[name] / results['ceiling']:.2f}×" if "ceiling" in results else "–"
        lines.append(f"| {labels[name]} | {results[name]:,.0f} | {ratio} |")
    for name in only:
        if name == "ceiling":
            continue
        for dump in (d for d in profiles[name] if total(d) > 0):
            lines += ["", f"{labels[name]}: {dump.relative_to(out)}, inclusive (top {args.top})", "```",
                      top(dump, True, args.top), "```", "", f"self (top {args.top})", "```",
                      top(dump, False, args.top), "```"]
    text = "\n".join(lines) + "\n"
    (out / "result.md").write_text(text)
    print(text)
    log(f"dumps and result.md in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
