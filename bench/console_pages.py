#!/usr/bin/env python3
"""The console's pages, timed: how long `belroute serve` takes to answer the overview, the
Calls page (100 calls), one call's trace and "Try a call" to a logged-in browser.

    bench/console_pages.py target/debug/belroute 18431

Starts the binary on 127.0.0.1:PORT with a throwaway rules directory, belroute.yaml and SQLite
call log, answers 300 calls, logs in, then asks each page 220 times on one keep-alive
connection (the first 20 not counted) and prints the median and 95th percentile and the page's
size. Run it with two binaries (before and after a change) to compare; docs/performance.md
says what was measured.
"""
import http.client, json, os, subprocess, sys, time, tempfile, urllib.parse, statistics, shutil
binary, port = sys.argv[1], int(sys.argv[2])
d = tempfile.mkdtemp()
os.makedirs(f"{d}/rules")
open(f"{d}/rules/main.yaml","w").write("""description: test
timeout: 2s
default: receptie
rules:
  - name: Withheld
    when: caller.anonymous
    route: anoniem
  - name: Abroad
    when: caller.valid && caller.country != "NL"
    route: international
""")
open(f"{d}/belroute.yaml","w").write("admin:\n  token: bench-admin-token-0123456789abcdef\n")
env = dict(os.environ, BELROUTE_LOG="warn")
p = subprocess.Popen([binary, "serve", "--rules", f"{d}/rules", "--config", f"{d}/belroute.yaml",
    "--database", f"sqlite://{d}/calls.db", "--listen", f"127.0.0.1:{port}", "--workers", "1"],
    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=d)
try:
    for _ in range(200):
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=5); c.request("GET", "/healthz"); c.getresponse().read(); break
        except Exception: time.sleep(0.1)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for i in range(300):
        body = json.dumps({"caller_number": "442079460000" if i % 2 else "0152026057", "uuid": f"bench-{i}", "dp_id": str(i)})
        c.request("POST", "/hooks/main", body, {"content-type": "application/json"}); c.getresponse().read()
    c.request("POST", "/admin/login", "token=bench-admin-token-0123456789abcdef", {"content-type": "application/x-www-form-urlencoded"})
    r = c.getresponse(); r.read()
    cookie = r.getheader("set-cookie").split(";")[0]
    time.sleep(1.5)
    out = {}
    for path in ["/admin", "/admin/calls", "/admin/calls/bench-7", "/admin/try"]:
        times = []
        for i in range(220):
            t = time.perf_counter()
            c.request("GET", path, headers={"cookie": cookie}); r = c.getresponse(); body = r.read()
            assert r.status == 200, (path, r.status)
            if i >= 20: times.append((time.perf_counter() - t) * 1000)
        times.sort()
        out[path] = (statistics.median(times), times[int(len(times)*0.95)], len(body))
    for k, (med, p95, size) in out.items():
        print(f"{k:28} median {med:6.2f} ms  p95 {p95:6.2f} ms  {size} bytes")
finally:
    p.terminate(); p.wait(); shutil.rmtree(d)
