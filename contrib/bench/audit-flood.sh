#!/usr/bin/env bash
# Refused-call flood: how many audit records N refused calls write.
#
#   contrib/bench/audit-flood.sh BINARY [N]
#
# Starts BINARY server on a free loopback port with a fresh SQLite database,
# issues a token for "mallory" (no role: every call is refused with 403),
# sends N (default 100000) GET /drawbridge/v1/grants?vm=… with it through one
# curl process (one kept-alive connection), stops the server (SIGTERM, so
# anything it summarises at shutdown is written) and counts mallory's audit
# records in the database. Bounded: N requests, each with a 5 s timeout.
set -euo pipefail
bin=$(realpath "$1"); n=${2:-100000}
dir=$(mktemp -d); trap 'kill $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
"$bin" server --listen 127.0.0.1:$port --db "$dir/db" >"$dir/log" 2>&1 & pid=$!
for _ in $(seq 100); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.1; done
export DRAWBRIDGE_SERVER=$url DRAWBRIDGE_TOKEN=$(cat "$dir/db.admin-token")
tok=$("$bin" -o json token create --principal mallory | python3 -c 'import json,sys; print(json.load(sys.stdin)["token"])')
start=$(date +%s.%N)
curl -s -m 5 -o /dev/null -w '%{http_code}\n' -H "Authorization: Bearer $tok" \
  "$url/drawbridge/v1/grants?vm=/subscriptions/x/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/v[1-$n]" \
  | sort | uniq -c | awk '{printf "status %s: %s calls\n", $2, $1}'
end=$(date +%s.%N)
kill -TERM $pid; wait $pid || true
printf 'calls: %d in %.1f s\n' "$n" "$(echo "$end - $start" | bc)"
printf 'audit records of mallory: %s\n' "$(sqlite3 "$dir/db" "SELECT count(*) FROM audit_records WHERE CAST(body AS TEXT) LIKE '%\"principal\":\"mallory\"%'")"
printf 'database + WAL: %s\n' "$(du -ch "$dir"/db* | tail -1 | cut -f1)"
