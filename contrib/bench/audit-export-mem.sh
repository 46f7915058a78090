#!/usr/bin/env bash
# Export memory: peak RSS of the server and of the CLI while `drawbridge
# audit export` streams a large audit log, then while `audit verify` checks it.
#
#   go run ./contrib/bench/auditfill -db /tmp/big.db -n 1000000
#   contrib/bench/audit-export-mem.sh BINARY /tmp/big.db
#
# Starts BINARY server on a free loopback port over DB (used in place; the
# first start writes DB.admin-token), runs the export to a file under
# /usr/bin/time (client peak RSS), and reads the server's peak RSS (VmHWM)
# from /proc after each command. VmHWM includes the pages of the database
# file that SQLite memory-maps (mmap_size 256 MiB per connection: shared,
# clean, reclaimable page cache), so the server's anonymous memory (heap,
# stacks: RssAnon) is also sampled every 0.2 s and its maximum printed.
set -euo pipefail
bin=$(realpath "$1"); db=$(realpath "$2")
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
url=http://127.0.0.1:$port
"$bin" server --listen 127.0.0.1:$port --db "$db" --sample-inventory=false >/tmp/export-mem-server.log 2>&1 & pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
for _ in $(seq 300); do curl -sf "$url/healthz" >/dev/null && break; sleep 0.1; done
export DRAWBRIDGE_SERVER=$url DRAWBRIDGE_TOKEN=$(cat "$db.admin-token")
hwm() { awk '/VmHWM/ {printf "%.1f MB", $2/1024}' /proc/$pid/status; }
# Sample RssAnon in the background; its maximum goes to a file.
( max=0; while kill -0 $pid 2>/dev/null; do
    a=$(awk '/RssAnon/ {print $2}' /proc/$pid/status 2>/dev/null || echo 0)
    [ "${a:-0}" -gt "$max" ] && max=$a && echo "$max" >/tmp/export-mem.anon
    sleep 0.2; done ) & sampler=$!
trap 'kill $pid $sampler 2>/dev/null || true' EXIT
anon() { awk '{printf "%.1f MB", $1/1024}' /tmp/export-mem.anon; }
echo "server peak RSS after start: $(hwm)"
start=$(date +%s.%N)
set +e
/usr/bin/time -f 'client peak RSS: %M KB, %e s' "$bin" audit export >/tmp/export-mem.jsonl 2>/tmp/export-mem.err
rc=$?
set -e
tail -2 /tmp/export-mem.err
echo "export: exit $rc, $(wc -l </tmp/export-mem.jsonl) lines, $(du -h /tmp/export-mem.jsonl | cut -f1)"
echo "server peak RSS after export: $(hwm) (anonymous: $(anon))"
set +e
/usr/bin/time -f 'verify client peak RSS: %M KB, %e s' "$bin" audit verify 2>&1 | tail -2
set -e
echo "server peak RSS after verify: $(hwm) (anonymous: $(anon))"
rm -f /tmp/export-mem.jsonl
