#!/usr/bin/env python3
"""End to end: belroute against a bare actix-web ceiling, in the same run.

    bench/e2e.py                      # the baseline: 15 s per measurement, about 4 minutes
    bench/e2e.py --duration 30        # longer measurements
    bench/e2e.py --help               # every knob

Builds (release) and starts, one at a time, a bare actix-web server (bench/ceiling) and belroute
on bench/rules with bench/belroute.yaml (SQLite call log on, a cached `sql` lookup on a SQLite
CRM this script creates, the `history` lookup on the call log, `--workers 1`). Each server is
pinned to one CPU (--server-cpu, default 0) and the load generators to another (--load-cpu,
default 1). For each server it measures:

  * fixed rates (default 1,000 / 2,500 / 5,000 calls/s) with oha `-q RATE --latency-correction`,
    a coordinated-omission-correct generator: p50 / p99 / p99.9 / max;
  * saturation with wrk (`-t1 -c32`): answers per second;
  * at rest, before the rates: 1,000 calls one at a time, 5 ms apart (`--rest-gap`), each
    server's round trip and belroute's own time (`micros` from its call log);

and errors, peak RSS (VmHWM), the server's CPU time per call, and for belroute "nothing lost":
call-log rows against 200 answers. Prints a Markdown table (also written to
target/bench/e2e-<date>.md, beside the raw tool outputs in target/bench/e2e-<date>/).

Needs Linux, curl, taskset, python3 (standard library only), wrk (installed with apt-get when
missing) and oha (installed with `cargo install oha --locked` when missing).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import platform
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
FIXTURE = ROOT / "tests/fixtures/callvoip/post-example.json"
RULESET = "main"
# The fixture's caller (31152026057) must be one of the callers and have open invoices.
FIXTURE_ROUTE = "finance"
FIRST_NUMBER = 2_020_000  # callers are 3115 2020000 … : Delft numbers, the fixture's among them
CLK_TCK = os.sysconf("SC_CLK_TCK")


class BenchError(Exception):
    """A reason to stop the run, said so that the reader knows what to fix."""


def log(msg: str) -> None:
    print(f"[e2e {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Tools


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    log("wrk is missing: installing Debian's package (apt-get install wrk)")
    if subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"]).returncode != 0:
        subprocess.run(["apt-get", "update", "-qq"], check=False)
        if subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"]).returncode != 0:
            raise BenchError("cannot install wrk; install it by hand: apt-get install wrk")
    return shutil.which("wrk") or "wrk"


def ensure_oha() -> str:
    found = shutil.which("oha") or (
        str(Path.home() / ".cargo/bin/oha") if (Path.home() / ".cargo/bin/oha").exists() else None
    )
    if found:
        return found
    log("oha is missing: installing it from crates.io (cargo install oha --locked; a few minutes)")
    if subprocess.run(["cargo", "install", "oha", "--locked"]).returncode != 0:
        raise BenchError("cannot install oha; install it by hand: cargo install oha --locked")
    return shutil.which("oha") or str(Path.home() / ".cargo/bin/oha")


def tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown"


def build(skip: bool, profile: str) -> Path:
    """Builds both servers (release unless told otherwise); returns cargo's target directory."""
    if not skip:
        log(f"building belroute and the ceiling (cargo build --profile {profile})")
        cmd = ["cargo", "build", "--profile", profile, "-p", "belroute", "-p", "belroute-bench-ceiling"]
        if subprocess.run(cmd, cwd=ROOT).returncode != 0:
            raise BenchError(f"the {profile} build failed (see cargo's output above)")
    meta = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )
    return Path(json.loads(meta.stdout)["target_directory"])


# ---------------------------------------------------------------------------------------------
# The callers, their calls and the CRM


def caller_numbers(count: int) -> list[str]:
    return [f"3115{FIRST_NUMBER + i}" for i in range(count)]


def has_open_invoices(number: str) -> bool:
    return int(number) % 2 == 1  # half the callers; the fixture's 31152026057 among them


def write_bodies(path: Path, numbers: list[str]) -> list[bytes]:
    """One call per caller: the fixture with its caller and uuid changed, one JSON per line."""
    fixture = json.loads(FIXTURE.read_text())
    bodies = []
    for i, number in enumerate(numbers):
        call = dict(fixture, caller_number=number)
        call["uuid"] = f"{fixture['uuid'][:-12]}{i:012d}"
        bodies.append(json.dumps(call, separators=(",", ":")).encode())
    path.write_bytes(b"\n".join(bodies) + b"\n")
    return bodies


def create_crm(path: Path, numbers: list[str]) -> None:
    """Dolibarr's two tables (as in examples/crm/): every caller a customer, half owing money."""
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
        if has_open_invoices(number):
            db.execute("INSERT INTO llx_facture (fk_soc, total_ttc, paye, fk_statut) VALUES (?, 121.0, 0, 1)", (i,))
    db.commit()
    db.close()


WRK_SCRIPT = r"""
-- POSTs the calls in BENCH_BODIES (one JSON per line) in turn; prints a JSON summary.
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local requests = {}
local n = 0
-- Formatted once, in init: wrk sets the Host header and the path only after loading the script.
init = function(_)
  for line in io.lines(os.getenv("BENCH_BODIES")) do
    requests[#requests + 1] = wrk.format(nil, nil, nil, line)
  end
end
request = function()
  n = n % #requests + 1
  return requests[n]
end
done = function(summary, latency, _)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"connect":%d,"read":%d,"write":%d,"status":%d,' ..
    '"timeout":%d,"p50_us":%d,"p99_us":%d,"p999_us":%d,"max_us":%d,"mean_us":%.1f}\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency:percentile(99.9), latency.max,
    latency.mean))
end
"""


# ---------------------------------------------------------------------------------------------
# Measuring


@dataclass
class Phase:
    """One measurement of one server."""

    name: str  # "1000/s" or "saturation"
    tool: str
    command: str
    sent: int = 0
    ok: int = 0  # 200 answers
    errors: int = 0  # everything else: other statuses, socket errors, timeouts
    error_detail: str = ""
    rps: float = 0.0  # answers per second
    p50: float = 0.0  # milliseconds
    p99: float = 0.0
    p999: float = 0.0
    max: float = 0.0
    server_cpu_s: float = 0.0
    wall_s: float = 0.0
    load_cpu_s: float = 0.0  # the generator's own CPU time
    hwm_kb: int = 0  # VmHWM after the phase
    others_on_server_cpu: float = 0.0  # share of the server's CPU used by other processes
    steal: float = 0.0  # share of time the hypervisor took from the two CPUs
    rows: int | None = None  # call-log rows this phase added (belroute only)
    decision_us: float | None = None  # belroute's own mean arrival-to-answer time


@dataclass
class Rest:
    """Calls one at a time with a pause between them, so the server is idle when each arrives."""

    calls: int = 0
    round_trip_p50_us: float = 0.0  # the client's, over one keep-alive connection
    round_trip_p99_us: float = 0.0
    decision_us: float | None = None  # belroute's own mean arrival-to-answer time
    micros_p50: float | None = None  # belroute's own time per call from its call log
    micros_p99: float | None = None


@dataclass
class ServerRun:
    name: str
    pid: int = 0
    phases: list[Phase] = field(default_factory=list)
    checks_ok: int = 0  # 200 answers outside the phases (check, warm-up)
    rest: Rest | None = None  # one call at a time on an idle server
    hwm_kb: int = 0
    rows_total: int | None = None
    metrics: dict[str, float] = field(default_factory=dict)


def proc_status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    return 0


def proc_cpu_seconds(pid: int) -> float:
    """utime + stime of every thread of the process."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def cpu_times() -> dict[str, list[int]]:
    """/proc/stat per CPU: user nice system idle iowait irq softirq steal …"""
    out = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if re.match(r"cpu\d+ ", line):
            name, *values = line.split()
            out[name] = [int(v) for v in values]
    return out


def busy_and_steal(before: dict[str, list[int]], after: dict[str, list[int]], cpu: str) -> tuple[float, float]:
    """Seconds the CPU was busy (all processes) and stolen by the hypervisor between two samples."""
    delta = [a - b for a, b in zip(after[cpu], before[cpu])]
    idle = delta[3] + delta[4]
    steal = delta[7] if len(delta) > 7 else 0
    busy = sum(delta[:8]) - idle - steal
    return busy / CLK_TCK, steal / CLK_TCK


NICE = 0  # set from --nice once the priority could be raised


def spawn(cmd: list[str], **kwargs) -> subprocess.Popen:
    """Starts a server or generator in its own session, at this script's raised priority.

    Linux groups processes by session for scheduling ("autogroup"): a nice value only counts
    against processes of the same session. Each child gets its own session, and that session's
    group gets the nice value too, so that other work on a shared machine yields to it."""
    proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
    if NICE:
        try:
            Path(f"/proc/{proc.pid}/autogroup").write_text(str(NICE))
        except OSError:
            pass  # no autogroup scheduling here: the nice value inherited is enough
    return proc


def run_tool(cmd: list[str], out_path: Path, env: dict[str, str] | None = None) -> tuple[int, float, float]:
    """Runs a load generator (on this process's CPU); returns exit code, wall and CPU seconds."""
    start = time.monotonic()
    with open(out_path, "wb") as out:
        proc = spawn(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except KeyboardInterrupt:
            proc.kill()
            raise
        proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.monotonic() - start, usage.ru_utime + usage.ru_stime


def post(url: str, body: bytes) -> tuple[int, str]:
    """One POST with curl, as the brief says: the check does not trust the load generators."""
    out = subprocess.run(
        ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-X", "POST",
         "-H", "Content-Type: application/json", "--data-binary", "@-", url],
        input=body, capture_output=True, timeout=10,
    )
    text = out.stdout.decode(errors="replace")
    answer, _, code = text.rpartition("\n")
    return int(code or 0), answer


def wait_ready(url: str, body: bytes, proc: subprocess.Popen, log_path: Path) -> int:
    """Waits for the first answer; returns 1 if it was a 200 (belroute logged that call)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"the server exited ({proc.returncode}) before answering; its log:\n{tail(log_path)}")
        try:
            code, _ = post(url, body)
            if code:
                return int(code == 200)
        except subprocess.TimeoutExpired:
            pass
        time.sleep(0.2)
    raise BenchError(f"no answer from {url} within 60 s; the server's log:\n{tail(log_path)}")


def tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def warm_up(host: str, port: int, path: str, bodies: list[bytes], expected: list[str]) -> int:
    """Sends every caller's call once on one connection and checks every route (and fills
    belroute's lookup cache, so the measured calls are cache hits as in steady operation)."""
    conn = http.client.HTTPConnection(host, port, timeout=10)
    wrong = []
    for body, want in zip(bodies, expected):
        conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        answer = response.read().decode(errors="replace")
        if response.status != 200 or answer != want:
            wrong.append(f"{json.loads(body)['caller_number']}: {response.status} {answer!r}, expected {want!r}")
    conn.close()
    if wrong:
        raise BenchError(f"{len(wrong)} of {len(bodies)} warm-up calls got a wrong answer, e.g.:\n  " + "\n  ".join(wrong[:5]))
    return len(bodies)


def at_rest(
    host: str, port: int, path: str, bodies: list[bytes], calls: int, db: Path | None,
    metered: bool, gap: float,
) -> Rest:
    """`calls` calls one at a time, `gap` seconds apart, from callers already warmed up: what
    one call costs when nothing else is running (belroute's `micros` at rest). With a gap of a
    few milliseconds the server's CPU goes idle between calls, as on a quiet line; with 0 it
    stays busy."""
    rest = Rest(calls=calls)
    before = scrape(port) if metered else {}
    first_id = None
    if db is not None:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        first_id = conn.execute("SELECT COALESCE(MAX(id), 0) FROM calls").fetchone()[0]
        conn.close()
    http_conn = http.client.HTTPConnection(host, port, timeout=10)
    trips = []
    for i in range(calls):
        body = bodies[i % len(bodies)]
        start = time.perf_counter()
        http_conn.request("POST", path, body=body, headers={"Content-Type": "application/json"})
        response = http_conn.getresponse()
        response.read()
        trips.append((time.perf_counter() - start) * 1e6)
        if response.status != 200:
            raise BenchError(f"a call at rest got {response.status}")
        if gap:
            time.sleep(gap)
    http_conn.close()
    trips.sort()
    rest.round_trip_p50_us = trips[len(trips) // 2]
    rest.round_trip_p99_us = trips[min(len(trips) - 1, len(trips) * 99 // 100)]
    if metered:
        after = scrape(port)
        n = after.get("belroute_decision_seconds_count", 0) - before.get("belroute_decision_seconds_count", 0)
        s = after.get("belroute_decision_seconds_sum", 0) - before.get("belroute_decision_seconds_sum", 0)
        rest.decision_us = s / n * 1e6 if n else None
    if db is not None:
        settle(db, first_id + calls)
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        micros = sorted(r[0] for r in conn.execute("SELECT micros FROM calls WHERE id > ?", (first_id,)))
        conn.close()
        if micros:
            rest.micros_p50 = micros[len(micros) // 2]
            rest.micros_p99 = micros[min(len(micros) - 1, len(micros) * 99 // 100)]
    return rest


def scrape(port: int) -> dict[str, float]:
    """belroute's counters that this script reads (sums over labels)."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^(belroute_[a-z_]+?)(?:\{[^}]*\})? ([0-9.eE+-]+)$", line)
        if m and m.group(1) in (
            "belroute_call_log_written_total", "belroute_call_log_dropped_total",
            "belroute_call_log_queued", "belroute_decision_seconds_sum",
            "belroute_decision_seconds_count", "belroute_lookup_requests_total",
            "belroute_lookup_cache_hits_total", "belroute_lookup_failures_total",
        ):
            out[m.group(1)] = out.get(m.group(1), 0.0) + float(m.group(2))
    return out


def count_rows(db: Path) -> int:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute("SELECT COUNT(*) FROM calls").fetchone()[0]
    finally:
        conn.close()


def settle(db: Path | None, expected: int, limit: float = 120.0) -> int | None:
    """Waits until the call log holds `expected` rows, or its count stops moving for 2 s."""
    if db is None:
        time.sleep(1)
        return None
    last, since = -1, time.monotonic()
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        rows = count_rows(db)
        if rows >= expected and rows == last:
            return rows
        if rows != last:
            last, since = rows, time.monotonic()
        elif time.monotonic() - since > 2:
            return rows
        time.sleep(0.25)
    return last


def measure(
    run: ServerRun, phase: Phase, cmd: list[str], raw: Path, env: dict[str, str],
    server_cpu: str, db: Path | None, rows_before: int | None, port: int | None,
) -> None:
    log(f"{run.name}: {phase.name} — {phase.command}")
    metrics_before = scrape(port) if port else {}
    cpu_before, stat_before = proc_cpu_seconds(run.pid), cpu_times()
    rc, wall, load_cpu = run_tool(cmd, raw, env)
    cpu_after, stat_after = proc_cpu_seconds(run.pid), cpu_times()
    text = raw.read_text(errors="replace")
    if rc != 0:
        raise BenchError(f"{phase.tool} exited with {rc}; its output ({raw}):\n{text[-2000:]}")
    phase.wall_s, phase.load_cpu_s = wall, load_cpu
    phase.server_cpu_s = cpu_after - cpu_before
    busy, _ = busy_and_steal(stat_before, stat_after, server_cpu)
    phase.others_on_server_cpu = max(0.0, busy - phase.server_cpu_s) / wall
    steal_all = sum(busy_and_steal(stat_before, stat_after, c)[1] for c in stat_after)
    phase.steal = steal_all / (wall * len(stat_after))
    if phase.tool == "oha":
        parse_oha(phase, text)
    else:
        parse_wrk(phase, text)
    phase.hwm_kb = proc_status(run.pid, "VmHWM")
    if db is not None and rows_before is not None:
        phase.rows = settle(db, rows_before + phase.ok) - rows_before
    if port:
        after = scrape(port)
        n = after.get("belroute_decision_seconds_count", 0) - metrics_before.get("belroute_decision_seconds_count", 0)
        s = after.get("belroute_decision_seconds_sum", 0) - metrics_before.get("belroute_decision_seconds_sum", 0)
        phase.decision_us = s / n * 1e6 if n else None
    log(
        f"{run.name}: {phase.name}: {phase.ok} answered ({phase.rps:,.0f}/s), p50 {phase.p50:.2f} ms, "
        f"p99 {phase.p99:.2f} ms, p99.9 {phase.p999:.2f} ms, max {phase.max:.2f} ms, {phase.errors} errors"
    )


def parse_oha(phase: Phase, text: str) -> None:
    data = json.loads(text[text.index("{"):])
    summary, pct = data["summary"], data["latencyPercentiles"]
    statuses = {int(k): v for k, v in data.get("statusCodeDistribution", {}).items()}
    errors = data.get("errorDistribution", {})
    phase.ok = statuses.get(200, 0)
    phase.sent = sum(statuses.values()) + sum(errors.values())
    phase.errors = phase.sent - phase.ok
    detail = [f"{v}× {k}" for k, v in statuses.items() if k != 200] + [f"{v}× {k}" for k, v in errors.items()]
    phase.error_detail = "; ".join(detail)
    phase.rps = phase.ok / summary["total"] if summary["total"] else 0.0
    ms = lambda v: (v or 0.0) * 1000  # noqa: E731 — oha reports seconds
    phase.p50, phase.p99, phase.p999 = ms(pct.get("p50")), ms(pct.get("p99")), ms(pct.get("p99.9"))
    phase.max = ms(summary.get("slowest"))


def parse_wrk(phase: Phase, text: str) -> None:
    m = re.search(r"^WRK_JSON (\{.*\})$", text, re.M)
    if not m:
        raise BenchError(f"wrk printed no summary:\n{text[-2000:]}")
    data = json.loads(m.group(1))
    socket = data["connect"] + data["read"] + data["write"] + data["timeout"]
    phase.sent = data["requests"]
    phase.ok = data["requests"] - data["status"]
    phase.errors = data["status"] + socket
    parts = []
    if data["status"]:
        parts.append(f"{data['status']}× not 2xx/3xx")
    for key in ("connect", "read", "write", "timeout"):
        if data[key]:
            parts.append(f"{data[key]}× socket {key}")
    phase.error_detail = "; ".join(parts)
    phase.rps = phase.ok / (data["duration_us"] / 1e6)
    phase.p50, phase.p99 = data["p50_us"] / 1000, data["p99_us"] / 1000
    phase.p999, phase.max = data["p999_us"] / 1000, data["max_us"] / 1000


# ---------------------------------------------------------------------------------------------
# One server, start to finish


def bench_server(
    name: str, cmd: list[str], env: dict[str, str], args: argparse.Namespace, port: int,
    bodies: list[bytes], expected: list[str], bodies_path: Path, raw_dir: Path,
    db: Path | None, work: Path,
) -> ServerRun:
    run = ServerRun(name)
    url = f"http://127.0.0.1:{port}/hooks/{RULESET}"
    # belroute logs a line per call: the whole log stays in the scratch directory, its start,
    # its end and its warnings go to raw_dir.
    log_path = work / f"{name}.log"
    server_log = open(log_path, "wb")
    full = ["taskset", "-c", str(args.server_cpu), *cmd]
    log(f"{name}: starting on CPU {args.server_cpu}: {' '.join(full)}")
    proc = spawn(full, stdout=server_log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    run.pid = proc.pid
    try:
        run.checks_ok += wait_ready(url, FIXTURE.read_bytes(), proc, log_path)
        # The check: the fixture, exactly as Callvoip's manual prints it, gets the right route.
        code, answer = post(url, FIXTURE.read_bytes())
        run.checks_ok += code == 200
        if code != 200 or answer != FIXTURE_ROUTE:
            raise BenchError(
                f"{name} answered the fixture with {code} {answer!r}, not 200 {FIXTURE_ROUTE!r}; "
                f"nothing was measured. Its log:\n{tail(log_path)}"
            )
        log(f"{name}: the fixture gets 200 {answer!r}; warming up with {len(bodies):,} callers")
        run.checks_ok += warm_up("127.0.0.1", port, f"/hooks/{RULESET}", bodies, expected)
        rows = settle(db, run.checks_ok)
        log(f"{name}: {args.rest_calls:,} calls at rest, one at a time")
        run.rest = at_rest("127.0.0.1", port, f"/hooks/{RULESET}", bodies, args.rest_calls, db, db is not None,
                           args.rest_gap / 1000)
        rows = None if rows is None else rows + args.rest_calls
        run.checks_ok += args.rest_calls
        log(f"{name}: at rest: round trip p50 {run.rest.round_trip_p50_us:,.0f} µs"
            + (f", micros p50 {run.rest.micros_p50:,.0f} µs" if run.rest.micros_p50 is not None else ""))
        wrk_env = dict(os.environ, BENCH_BODIES=str(bodies_path))
        for rate in args.rates:
            phase = Phase(f"{rate:,}/s", "oha", "")
            tool = [
                args.oha, "-z", f"{args.duration}s", "-q", str(rate), "--latency-correction",
                "-c", str(args.oha_connections), "--worker-threads", "1",
                "--wait-ongoing-requests-after-deadline", "--no-tui", "--output-format", "json",
                "-m", "POST", "-H", "Content-Type: application/json", "-Z", str(bodies_path), url,
            ]
            phase.command = (
                f"oha -z {args.duration}s -q {rate} --latency-correction -c {args.oha_connections} "
                "--worker-threads 1 -w -m POST -Z calls.jsonl"
            )
            measure(run, phase, tool, raw_dir / f"{name}-oha-{rate}.json", dict(os.environ),
                    str_cpu(args.server_cpu), db, rows, port if db else None)
            run.phases.append(phase)
            rows = None if rows is None else rows + (phase.rows or 0)
            time.sleep(args.pause)
        phase = Phase("saturation", "wrk", "")
        tool = [
            args.wrk, "-t1", f"-c{args.connections}", f"-d{args.duration}s", "--timeout", "10s",
            "-s", str(raw_dir / "calls.lua"), url,
        ]
        phase.command = f"wrk -t1 -c{args.connections} -d{args.duration}s -s calls.lua"
        measure(run, phase, tool, raw_dir / f"{name}-wrk.txt", wrk_env,
                str_cpu(args.server_cpu), db, rows, port if db else None)
        run.phases.append(phase)
        run.hwm_kb = proc_status(run.pid, "VmHWM")
        if db is not None:
            run.metrics = scrape(port)
    finally:
        stop(proc, name)
        server_log.close()
        keep_log(log_path, raw_dir / f"{name}.log")
    if db is not None:
        run.rows_total = count_rows(db)
    log(f"{name}: stopped (exit {proc.returncode}); peak RSS {run.hwm_kb / 1024:.1f} MiB")
    return run


def stop(proc: subprocess.Popen, name: str) -> None:
    """SIGTERM, as an operator stops it (belroute writes its waiting records); a kill after 60 s."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        log(f"{name} did not stop within 60 s of SIGTERM; killing it")
        proc.kill()
        proc.wait()


def keep_log(source: Path, dest: Path) -> None:
    lines = source.read_text(errors="replace").splitlines()
    notable = [l for l in lines if re.search(r"\b(WARN|ERROR)\b", l)]
    dest.write_text("\n".join(
        [f"# {len(lines):,} lines; the first 30, every WARN/ERROR line (at most 200), the last 30", *lines[:30],
         "# …", *notable[:200], "# …", *lines[-30:]]
    ) + "\n")


def str_cpu(cpu: int) -> str:
    return f"cpu{cpu}"


# ---------------------------------------------------------------------------------------------
# The report


def fmt_ms(v: float) -> str:
    return f"{v:.2f}" if v < 10 else f"{v:.1f}" if v < 100 else f"{v:,.0f}"


def report(args, ceiling: ServerRun, belroute: ServerRun, info: dict[str, str]) -> str:
    lines = [
        f"### End to end, against the ceiling: {info['date']}",
        "",
        f"- Machine: {info['cpus']} vCPU ({info['model']}), {info['memory']}, {info['kernel']}; "
        f"server on CPU {args.server_cpu}, load generator on CPU {args.load_cpu} (taskset), one server at a time, "
        f"{f'both at nice {args.nice}' if args.niced else 'at normal priority'}.",
        f"- Load average before the run: {info['load_before']}; after: {info['load_after']}.",
        f"- belroute {info['commit']}, {info['profile']} build; ceiling: actix-web {info['actix']} (bench/ceiling), one worker each.",
        f"- Calls: the body of tests/fixtures/callvoip/post-example.json with `caller_number` and `uuid` set for"
        f" {args.callers:,} Dutch callers (a random one per call with oha, in turn with wrk), each called once"
        f" before measuring; {args.duration} s per measurement; {info['oha']}, {info['wrk']}.",
        f"- belroute: bench/rules/main.yaml with bench/belroute.yaml: 5 rules, a cached `sql` lookup (warm),"
        f" `history` on the call log, SQLite call log, logging at {info['log']} (`BELROUTE_LOG`) to a file.",
        f"- Command: `{info['command']}`",
        "",
        "| server | load | answered/s | p50 ms | p99 ms | p99.9 ms | max ms | errors | server CPU per call | peak RSS |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in (ceiling, belroute):
        for p in run.phases:
            load = f"oha {p.name} (CO-corrected)" if p.tool == "oha" else f"wrk saturation, {args.connections} conn."
            per_call = f"{p.server_cpu_s / p.ok * 1e6:,.0f} µs" if p.ok else "–"
            lines.append(
                f"| {run.name} | {load} | {p.rps:,.0f} | {fmt_ms(p.p50)} | {fmt_ms(p.p99)} | {fmt_ms(p.p999)} "
                f"| {fmt_ms(p.max)} | {p.errors:,} | {per_call} | {p.hwm_kb / 1024:.1f} MiB |"
            )
    sat_c, sat_b = ceiling.phases[-1], belroute.phases[-1]
    ratio = sat_b.rps / sat_c.rps if sat_c.rps else 0
    lines += [
        "",
        f"**Ratio belroute ÷ ceiling at saturation: {ratio:.3f}** ({sat_b.rps:,.0f} ÷ {sat_c.rps:,.0f} answers/s)."
        f" Server CPU per call: belroute {sat_b.server_cpu_s / max(sat_b.ok, 1) * 1e6:,.0f} µs,"
        f" ceiling {sat_c.server_cpu_s / max(sat_c.ok, 1) * 1e6:,.0f} µs.",
        "",
        "| goal (issue 11) | measured | met |",
        "| --- | --- | --- |",
    ]
    by_rate = {p.name: p for p in belroute.phases}
    lines.append(f"| belroute ≥ 0.5 of the ceiling's throughput | {ratio:.3f} | {'yes' if ratio >= 0.5 else 'no'} |")
    for rate, goal in (("2,500/s", 2.0), ("5,000/s", 5.0)):
        if rate in by_rate:
            p = by_rate[rate]
            lines.append(f"| p99 ≤ {goal:.0f} ms at {rate} | {fmt_ms(p.p99)} ms | {'yes' if p.p99 <= goal and not p.errors else 'no'} |")
    lines.append(f"| peak RSS ≤ 64 MB | {belroute.hwm_kb * 1024 / 1e6:.1f} MB | {'yes' if belroute.hwm_kb * 1024 <= 64e6 else 'no'} |")
    answered = belroute.checks_ok + sum(p.ok for p in belroute.phases)
    lost = answered - (belroute.rows_total or 0)
    lines.append(
        f"| nothing lost: a call-log row for every 200 | {belroute.rows_total:,} rows for {answered:,} answers"
        f" | {'yes' if lost <= 0 else 'no'} |"
    )
    lines += ["", "Nothing lost, per measurement (rows counted once the call log stopped growing):", ""]
    for p in belroute.phases:
        diff = (p.rows or 0) - p.ok
        why = ""
        if diff > 0 and p.tool == "wrk":
            why = " (wrk does not count the answers to requests in flight when it stops: at most one per connection)"
        elif diff < 0:
            why = " (**rows missing**)"
        lines.append(f"- {p.name}: {p.ok:,} answers, {p.rows:,} rows, difference {diff:+,}{why}")
    m = belroute.metrics
    lines.append(
        f"- In all: {answered:,} answers with 200 (check and warm-up included), {belroute.rows_total:,} rows after a clean"
        f" stop; belroute's counters before the stop: {m.get('belroute_call_log_written_total', 0):,.0f} written,"
        f" {m.get('belroute_call_log_dropped_total', 0):,.0f} dropped."
    )
    lines += ["", "belroute's own time from a call's arrival to its answer (mean of `belroute_decision_seconds`):", ""]
    lines.append("- " + "; ".join(
        f"{p.name} {p.decision_us:,.0f} µs" for p in belroute.phases if p.decision_us is not None
    ) + ".")
    lines += ["", f"At rest ({args.rest_calls:,} calls one at a time, {args.rest_gap:g} ms apart, over one keep-alive connection, from"
              " callers already warmed up):", ""]
    for run in (ceiling, belroute):
        r = run.rest
        if r is None:
            continue
        own = ""
        if r.micros_p50 is not None:
            own = (f"; belroute's own time (`micros` in the call log) p50 {r.micros_p50:,.0f} µs,"
                   f" p99 {r.micros_p99:,.0f} µs, mean of `belroute_decision_seconds` {r.decision_us or 0:,.0f} µs")
        lines.append(f"- {run.name}: client round trip p50 {r.round_trip_p50_us:,.0f} µs, p99 {r.round_trip_p99_us:,.0f} µs{own}.")
    lines += [
        "",
        f"How clean each measurement was: the share of CPU {args.server_cpu} that other processes used (they fill"
        " the server's idle time, and each time the server wakes it may wait for them), the share of both CPUs"
        " the hypervisor took (steal), and how busy the generator kept its own CPU:",
        "",
    ]
    for run in (ceiling, belroute):
        lines.append(f"- {run.name}: " + "; ".join(
            f"{p.name}: others {p.others_on_server_cpu:.0%}, steal {p.steal:.0%}, generator {p.load_cpu_s / p.wall_s:.0%}"
            for p in run.phases
        ) + ".")
    errors = [f"{run.name} {p.name}: {p.error_detail}" for run in (ceiling, belroute) for p in run.phases if p.errors]
    if errors:
        lines += ["", "Errors: " + "; ".join(errors) + "."]
    return "\n".join(lines) + "\n"


def machine_info(args, target: Path) -> dict[str, str]:
    cpuinfo = Path("/proc/cpuinfo").read_text()
    model = re.search(r"^model name\s*:\s*(.*)$", cpuinfo, re.M)
    mem_kb = int(re.search(r"^MemTotal:\s*(\d+)", Path("/proc/meminfo").read_text(), re.M).group(1))
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    lock = (ROOT / "Cargo.lock").read_text()
    actix = re.search(r'name = "actix-web"\nversion = "([^"]+)"', lock)
    return {
        "date": dt.datetime.now().strftime("%Y-%m-%d %H:%M"),
        "cpus": str(os.cpu_count()),
        "model": model.group(1).strip() if model else platform.processor(),
        "memory": f"{mem_kb / 1024 / 1024:.0f} GiB",
        "kernel": f"Linux {platform.release()}",
        "commit": f"{commit}{' (modified)' if dirty else ''}",
        "actix": actix.group(1) if actix else "?",
        "oha": tool_version([args.oha, "--version"]),
        "wrk": tool_version([args.wrk, "-v"]).split(" [")[0],
        "profile": args.profile if args.profile != "dev" else "**dev (debug: not a measurement)**",
        "log": os.environ.get("BELROUTE_LOG", "belroute's default"),
        "command": "bench/e2e.py" + "".join(f" {a}" for a in sys.argv[1:]),
        "load_before": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
    }


# ---------------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=int, default=15, help="seconds per measurement (default 15)")
    p.add_argument("--rates", default="1000,2500,5000", help="fixed rates for oha, calls/s (default 1000,2500,5000)")
    p.add_argument("--connections", type=int, default=32, help="wrk connections at saturation (default 32)")
    p.add_argument("--oha-connections", type=int, default=32, help="oha connections at fixed rates (default 32)")
    p.add_argument("--callers", type=int, default=10_000, help="distinct callers (default 10,000)")
    p.add_argument("--server-cpu", type=int, default=0, help="CPU for the servers (default 0)")
    p.add_argument("--load-cpu", type=int, default=1, help="CPU for the load generators (default 1)")
    p.add_argument("--rest-calls", type=int, default=1000,
                   help="calls one at a time on the idle server, for `micros` at rest (default 1,000)")
    p.add_argument("--rest-gap", type=float, default=5.0,
                   help="milliseconds between the calls at rest (default 5; 0 keeps the CPU busy)")
    p.add_argument("--pause", type=float, default=2.0, help="seconds of rest between measurements (default 2)")
    p.add_argument("--nice", type=int, default=-20,
                   help="priority of the servers and generators (default -20, needs root; 0 leaves it)")
    p.add_argument("--skip-build", action="store_true", help="use the binaries already built")
    p.add_argument("--profile", default="release",
                   help="cargo profile (default release; `dev` only to try this script out, never for figures)")
    p.add_argument("--out", type=Path, default=ROOT / "target/bench", help="where results go (default target/bench)")
    args = p.parse_args()
    args.rates = [int(r) for r in args.rates.split(",") if r]
    if args.server_cpu == args.load_cpu:
        p.error("--server-cpu and --load-cpu must differ: the point is that they do not share a CPU")
    if not 1 <= args.callers <= 100_000:
        p.error("--callers is 1 to 100,000")
    return args


def main() -> int:
    args = parse_args()
    if sys.platform != "linux":
        raise BenchError("this benchmark needs Linux (taskset, /proc)")
    online = os.sched_getaffinity(0)
    for cpu in (args.server_cpu, args.load_cpu):
        if cpu not in online:
            raise BenchError(f"CPU {cpu} is not available here (CPUs: {sorted(online)}); use --server-cpu/--load-cpu")
    for tool in ("curl", "taskset", "cargo"):
        if not shutil.which(tool):
            raise BenchError(f"`{tool}` is not installed")
    args.wrk, args.oha = ensure_wrk(), ensure_oha()
    target = build(args.skip_build, args.profile)
    out_dir = target / ("debug" if args.profile == "dev" else args.profile)
    belroute_bin, ceiling_bin = out_dir / "belroute", out_dir / "belroute-bench-ceiling"
    for binary in (belroute_bin, ceiling_bin):
        if not binary.exists():
            raise BenchError(f"{binary} is missing: run without --skip-build")

    # From here on this script and the generators it starts stay off the servers' CPU.
    os.sched_setaffinity(0, {args.load_cpu})
    # Everything started from here (servers, generators) inherits this priority: on a shared
    # machine, other work then gets little of the two CPUs while a measurement runs.
    global NICE
    args.niced = False
    if args.nice:
        try:
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
            args.niced, NICE = True, args.nice
        except PermissionError:
            log(f"cannot raise the priority to nice {args.nice} (not root?): measuring at normal priority")
    stamp = dt.datetime.now().strftime("%Y-%m-%d-%H%M%S")
    raw_dir = args.out / f"e2e-{stamp}"
    raw_dir.mkdir(parents=True, exist_ok=True)
    info = machine_info(args, target)
    work = Path(tempfile.mkdtemp(prefix="belroute-e2e-"))
    try:
        numbers = caller_numbers(args.callers)
        if "31152026057" not in numbers:
            raise BenchError("--callers must be at least 6,058 so that the fixture's caller is one of them")
        bodies_path = raw_dir / "calls.jsonl"
        bodies = write_bodies(bodies_path, numbers)
        (raw_dir / "calls.lua").write_text(WRK_SCRIPT)
        create_crm(work / "crm.db", numbers)
        env = dict(os.environ, BELROUTE_BENCH_CRM_URL=f"sqlite://{work / 'crm.db'}?mode=ro")
        env.pop("BELROUTE_LOG_FORMAT", None)

        log("belroute test: the benchmark's rule set answers what the script expects")
        test = subprocess.run(
            [str(belroute_bin), "test", "--config", str(BENCH / "belroute.yaml"), "--rules", str(BENCH / "rules")],
            env=env, capture_output=True, text=True, cwd=ROOT,
        )
        (raw_dir / "belroute-test.txt").write_text(test.stdout + test.stderr)
        if test.returncode != 0:
            raise BenchError(f"`belroute test` failed on bench/rules:\n{test.stdout}{test.stderr}")

        ceiling = bench_server(
            "ceiling", [str(ceiling_bin), "127.0.0.1:18081"], dict(os.environ), args, 18081,
            bodies, [FIXTURE_ROUTE] * len(bodies), bodies_path, raw_dir, None, work,
        )
        db = work / "calls.db"
        belroute = bench_server(
            "belroute",
            [str(belroute_bin), "serve", "--listen", "127.0.0.1:18080", "--workers", "1",
             "--rules", str(BENCH / "rules"), "--config", str(BENCH / "belroute.yaml"),
             "--database", f"sqlite://{db}"],
            env, args, 18080, bodies,
            ["finance" if has_open_invoices(n) else "receptie" for n in numbers],
            bodies_path, raw_dir, db, work,
        )
        info["load_after"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
        text = report(args, ceiling, belroute, info)
        out = args.out / f"e2e-{stamp}.md"
        out.write_text(text)
        (raw_dir / "results.json").write_text(json.dumps(
            {"ceiling": ceiling.__dict__, "belroute": belroute.__dict__, "info": info},
            default=lambda o: o.__dict__, indent=2,
        ))
        print(text)
        log(f"written to {out.relative_to(ROOT) if out.is_relative_to(ROOT) else out}; raw outputs in {raw_dir}")
        return 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except BenchError as e:
        log(f"error: {e}")
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
