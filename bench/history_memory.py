#!/usr/bin/env python3
"""What `history` kept in memory costs per caller: resident memory, with and without it.

    bench/history_memory.py                 # release build first: cargo build --release
    bench/history_memory.py --callers 40000

Starts `belroute serve` twice on a fresh SQLite call log, with a rule set that reads `history`:
once with `storage.history_callers: 0` (nothing kept) and once with room for every caller. Each
time: 2,000 warm-up calls, then one call from each of CALLERS new Dutch mobile callers over one
keep-alive connection; VmRSS before and after (from /proc). The difference between the two
servers' growth, divided by CALLERS, is what one kept caller costs. One run each: RSS moves by
a few hundred KiB between runs of the same binary.
"""

from __future__ import annotations

import argparse
import http.client
import json
import signal
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RULES = """default: receptie
lookups: [history]
rules:
  - name: Same colleague
    when: history.calls_today > 0 && history.last_agent != ()
    script: '`agent_${history.last_agent}`'
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise SystemExit(f"no VmRSS for process {pid}")


def grow(work: Path, kept: int, port: int, callers: int) -> tuple[int, int]:
    """The server's RSS before and after `callers` new callers, with `kept` callers kept."""
    (work / f"belroute-{kept}.yaml").write_text(
        f"plugins:\n  history:\n    kind: history\nstorage:\n  history_callers: {kept}\n")
    server = subprocess.Popen(
        [str(ROOT / "target/release/belroute"), "serve", "--listen", f"127.0.0.1:{port}", "--workers", "1",
         "--rules", str(work / "rules"), "--config", str(work / f"belroute-{kept}.yaml"),
         "--database", f"sqlite://{work / f'calls-{kept}.db'}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=work)
    try:
        for _ in range(300):
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                probe.request("GET", "/healthz")
                probe.getresponse().read()
                break
            except OSError:
                time.sleep(0.2)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

        def call(uuid: str, caller: str) -> None:
            conn.request("POST", "/hooks/main", json.dumps({"uuid": uuid, "caller_number": caller}),
                         {"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"answer {response.status}")

        for i in range(2000):
            call(f"warm-{i}", f"3161{i:07d}")
        time.sleep(2)
        before = rss_kib(server.pid)
        for i in range(callers):
            call(f"new-{i}", f"3162{i:07d}")
        time.sleep(3)
        return before, rss_kib(server.pid)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=60)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--callers", type=int, default=40_000, help="new callers, one call each (default 40,000)")
    args = p.parse_args()
    if not (ROOT / "target/release/belroute").exists():
        raise SystemExit("build it first: cargo build --release --locked -p belroute")
    with tempfile.TemporaryDirectory(prefix="belroute-history-memory-") as tmp:
        work = Path(tmp)
        (work / "rules").mkdir()
        (work / "rules/main.yaml").write_text(RULES)
        off = grow(work, 0, 18401, args.callers)
        on = grow(work, max(args.callers * 2, 20_000), 18402, args.callers)
    per_caller = ((on[1] - on[0]) - (off[1] - off[0])) * 1024 / args.callers
    print(f"history_callers: 0        RSS {off[0]:,} -> {off[1]:,} KiB (+{off[1] - off[0]:,})")
    print(f"history_callers: {max(args.callers * 2, 20_000):,}  RSS {on[0]:,} -> {on[1]:,} KiB (+{on[1] - on[0]:,})")
    print(f"one kept caller: {per_caller:,.0f} bytes ({args.callers:,} new callers, one call each)")


if __name__ == "__main__":
    main()
