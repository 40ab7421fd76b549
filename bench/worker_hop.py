#!/usr/bin/env python3
"""What a rule set that needs a worker process pays per call, in instructions and wall time.

    bench/worker_hop.py                 # 2,000 calls per side under callgrind, then wall time
    bench/worker_hop.py --calls 5000

Runs `benches/worker_hop.rs` (ten everyday rules, decided in the server, and the same rules in
a worker process) twice per side under `valgrind --tool=callgrind --trace-children=yes`: once
with CALLS calls and once with none, so that start-up, the warm-up and the worker's one-time
compile cancel out. Callgrind counts only inside the bench's `measured` (the server's side) and
the worker's `serve` (the worker's side). Prints instructions per call in the server and in the
worker, and the hop's cost: (server + worker, worker side) − (server, inline side). Then runs
the bench without valgrind for wall time per call (unpinned, and all on one CPU with taskset).

Instruction counts are exact for a given binary and input whatever else the machine does; wall
time on a 2-vCPU VM is dominated by how fast one process wakes another across CPUs.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bench_binary() -> Path:
    out = subprocess.run(
        ["cargo", "bench", "--bench", "worker_hop", "--no-run", "--message-format=json"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    for line in out.splitlines():
        message = json.loads(line)
        if message.get("reason") == "compiler-artifact" and message.get("executable"):
            if message["target"]["name"] == "worker_hop":
                return Path(message["executable"])
    sys.exit("cargo did not say where the worker_hop bench is")


def totals(side: str, calls: int, binary: Path) -> tuple[int, int]:
    """(server, worker) instructions counted in one callgrind run."""
    with tempfile.TemporaryDirectory() as out:
        subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                "--trace-children=yes",
                "--collect-atstart=no",
                "--toggle-collect=*worker_hop::measured*",
                "--toggle-collect=*sandbox::worker::serve*",
                f"--callgrind-out-file={out}/cg.%p",
                str(binary),
                side,
                str(calls),
            ],
            cwd=ROOT,
            check=True,
            capture_output=True,
            # Under valgrind a worker maps far more than it uses.
            # … and callgrind must write its counts from inside the worker.
            env={
                "BELROUTE_BENCH_WORKER_MEMORY": str(64 << 30),
                "BELROUTE_WORKER_PROFILING": "1",
                "PATH": "/usr/bin:/bin",
            },
        )
        server = worker = 0
        for file in Path(out).glob("cg.*"):
            text = file.read_text(errors="replace")
            command = re.search(r"^cmd: (.*)$", text, re.M)
            total = re.search(r"^(?:summary|totals): (\d+)", text, re.M)
            count = int(total.group(1)) if total else 0
            # The worker's command line is `…/belroute worker {spec}`.
            if command and re.search(r"belroute worker \{", command.group(1)):
                worker += count
            else:
                server += count
        return server, worker


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per side under callgrind")
    args = parser.parse_args()
    if not shutil.which("valgrind"):
        sys.exit("valgrind is needed: apt-get install valgrind")
    binary = bench_binary()
    n = args.calls
    per_call = {}
    for side in ("inline", "worker"):
        server_n, worker_n = totals(side, n, binary)
        server_0, worker_0 = totals(side, 0, binary)
        per_call[side] = ((server_n - server_0) / n, (worker_n - worker_0) / n)
    inline_server, _ = per_call["inline"]
    worker_server, worker_worker = per_call["worker"]
    print(f"instructions per call, ten rules, {n} calls per side (callgrind, start-up and warm-up subtracted)")
    print(f"  in the server:                 {inline_server:>9,.0f}")
    print(f"  in a worker, server's part:    {worker_server:>9,.0f}")
    print(f"  in a worker, worker's part:    {worker_worker:>9,.0f}")
    print(f"  in a worker, both:             {worker_server + worker_worker:>9,.0f}")
    print(f"  the worker hop adds:           {worker_server + worker_worker - inline_server:>9,.0f}")
    print()
    print("wall time (no valgrind):")
    print(subprocess.run([str(binary)], cwd=ROOT, check=True, capture_output=True, text=True).stdout)
    if shutil.which("taskset"):
        print("wall time, server and worker on one CPU (taskset -c 0):")
        print(
            subprocess.run(
                ["taskset", "-c", "0", str(binary)],
                cwd=ROOT,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )


if __name__ == "__main__":
    main()
