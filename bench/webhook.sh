#!/usr/bin/env bash
# Benchmark: Callvoip webhook calls answered by a release build of belroute on loopback.
#
#   1. baseline: rules/main.yaml-style rules, no lookups;
#   2. cached:   a rule set with an `sql` lookup whose facts are in the cache (ttl 1h), for one
#                caller and for 1,000 callers in turn.
#
# Needs wrk (Debian: apt-get install wrk) and python3. Prints wrk's figures and belroute's peak
# memory (VmHWM). Usage: bench/webhook.sh [seconds per run, default 20] [connections, default 32]
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION="${1:-20}"
CONNECTIONS="${2:-32}"
PORT=18765
WORK="$(mktemp -d)"
trap 'kill "${PID:-0}" 2>/dev/null || true; rm -rf "$WORK"' EXIT

command -v wrk >/dev/null || { echo "wrk is not installed (apt-get install wrk)"; exit 2; }
cargo build --release --quiet
BIN=target/release/belroute

# A CRM in SQLite: 1,000 customers, half with open invoices.
python3 - "$WORK/crm.db" <<'PY'
import sqlite3, sys
db = sqlite3.connect(sys.argv[1])
db.execute("CREATE TABLE llx_societe (rowid INTEGER PRIMARY KEY, phone_normalized TEXT)")
db.execute("CREATE TABLE llx_facture (rowid INTEGER PRIMARY KEY, fk_soc INTEGER, total_ttc REAL, paye INTEGER, fk_statut INTEGER)")
for i in range(1000):
    db.execute("INSERT INTO llx_societe VALUES (?, ?)", (i, "+3161%07d" % i))
    if i % 2 == 0:
        db.execute("INSERT INTO llx_facture VALUES (?, ?, 100.0, 0, 1)", (i, i))
db.commit()
PY

mkdir -p "$WORK/rules"
cat > "$WORK/rules/plain.yaml" <<'YAML'
timeout: 2s
default: receptie
rules:
  - name: Withheld
    when: caller.anonymous
    route: anoniem
  - name: Abroad
    when: caller.valid && caller.country != "NL"
    route: international
  - name: Mobile
    when: caller.kind == "mobile" && call.dp_in_number == "1003"
    route: mobiel
YAML
cat > "$WORK/rules/cached.yaml" <<'YAML'
timeout: 2s
default: receptie
lookups: [invoices]
rules:
  - name: Open invoices go to Finance
    when: invoices.open_count > 0
    route: finance
YAML
cat > "$WORK/belroute.yaml" <<YAML
plugins:
  invoices:
    kind: sql
    url: "sqlite://$WORK/crm.db?mode=ro"
    query: >
      SELECT COUNT(*) AS open_count FROM llx_facture f JOIN llx_societe s ON s.rowid = f.fk_soc
      WHERE f.paye = 0 AND f.fk_statut = 1 AND s.phone_normalized = :caller_e164
    cache: { ttl: 1h, negative_ttl: 1h }
YAML

RUST_LOG=warn "$BIN" serve --listen "127.0.0.1:$PORT" --rules "$WORK/rules" --config "$WORK/belroute.yaml" \
  --database "sqlite://$WORK/belroute.db" 2>"$WORK/belroute.log" &
PID=$!
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null && break; sleep 0.1; done

# One caller, as the fixture Callvoip sends.
cat > "$WORK/one.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = '{"com_id":"42f30becd4ea93edd284e059427b5ee0","dp_id":"42f30becd4ea93edd284e059427cf1f7","dp_in_number":"1003","dp_ex_number":"31102380095","callee_number":"31102380095","caller_number":"31610000002","uuid":"b587f4ee-718d-11ed-88ee-b97829e8fee4","phonebook_caller_name":"","event_time":"1669908899250","call_start_time":"1669908896814","rta_call_id":"8a5d5db451e9-6bd98ab0066f","sip_call_id":"lsjuf8l09juq1i0a9vai"}'
LUA
# 1,000 callers in turn.
cat > "$WORK/many.lua" <<'LUA'
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local n = 0
request = function()
  n = (n + 1) % 1000
  local body = string.format('{"caller_number":"3161%07d","dp_in_number":"1003","uuid":"bench-%d"}', n, n)
  return wrk.format(nil, nil, nil, body)
end
LUA

run() { # name path script [connections]
  local connections="${4:-$CONNECTIONS}"
  local threads=$(( connections < 2 ? connections : 2 ))
  echo "== $1 (wrk -t$threads -c$connections -d${DURATION}s)"
  wrk -t"$threads" -c"$connections" -d"${DURATION}s" --latency -s "$3" "http://127.0.0.1:$PORT$2" \
    | sed -n '/Latency Distribution/,/requests in/p;/Requests\/sec/p'
  echo "answer: $(curl -s -X POST -H 'content-type: application/json' --data '{"caller_number":"31610000002"}' "http://127.0.0.1:$PORT$2")"
}

echo "belroute $("$BIN" --version), $(nproc) CPUs, wrk -t2 -c$CONNECTIONS -d${DURATION}s, logs at warn"
run "baseline: 3 rules, no lookups" /hooks/plain "$WORK/one.lua"
# Warm the cache for all 1,000 callers, then measure.
wrk -t1 -c4 -d2s -s "$WORK/many.lua" "http://127.0.0.1:$PORT/hooks/cached" >/dev/null
run "cached facts, one caller" /hooks/cached "$WORK/one.lua"
run "cached facts, 1,000 callers in turn" /hooks/cached "$WORK/many.lua"
run "cached facts, one caller, one connection at a time" /hooks/cached "$WORK/one.lua" 1
echo "== belroute memory: $(grep -E 'VmHWM|VmRSS' /proc/$PID/status | tr -s ' ' | tr '\n' ' ')"
METRICS="$(curl -s "http://127.0.0.1:$PORT/metrics")"
echo "$METRICS" | grep -E '^belroute_(lookup_(requests|cache_hits)_total|call_log_(written|dropped)_total)'
# Server-side time from arrival to answer, per rule set (belroute_decision_seconds).
echo "$METRICS" | awk -F'[{}" ]+' '/^belroute_decision_seconds_(sum|count)/ { v[$1" "$3]=$NF }
  END { for (k in v) if (k ~ /_sum/) { split(k, p, " "); c = v["belroute_decision_seconds_count " p[2]];
        printf "mean decision time %s: %.1f µs over %d calls\n", p[2], v[k] / c * 1e6, c } }'

