#!/usr/bin/env bash
# make-schema0-datadir.sh - writes the SQL text of a data directory as
# idbmount laid it out before schema versions (PRAGMA user_version 0), for
# tests/ops/test_upgrade.py.
#
#   IDBMOUNT_BIN=... IDBMOUNTCTL_BIN=... tests/ops/make-schema0-datadir.sh > schema0-datadir.sql
#
# It drives the real programs of that version: clients, a pipeline token,
# records in several object stores (inline and out-of-line keys, keys of
# every kind), tombstones, records pushed over HTTP, a dir sink that
# shipped everything (its cursor) and an http sink whose receiver answers
# 400, which parks a batch (an intent). Then it stops the daemon and prints
# `sqlite3 .dump` of the database, the two header fields .dump leaves out
# (application_id, user_version), and the tokens as SQL comments so the
# test can speak to the upgraded daemon. The committed schema0-datadir.sql
# was made by this script from the programs before schema versions existed.
set -euo pipefail

IDBMOUNT=${IDBMOUNT_BIN:-build/idbmount}
IDBMOUNTCTL=${IDBMOUNTCTL_BIN:-build/idbmountctl}
tmp=$(mktemp -d)
data=$tmp/data
mnt=$tmp/mnt
spool=$tmp/spool
mkdir -p "$mnt" "$spool"
daemon_pid=
receiver_pid=
cleanup() {
	if mountpoint -q "$mnt"; then fusermount3 -u "$mnt" || true; fi
	if [ -n "$daemon_pid" ]; then wait "$daemon_pid" || true; fi
	if [ -n "$receiver_pid" ]; then kill "$receiver_pid" 2>/dev/null || true; fi
	rm -rf "$tmp"
}
trap cleanup EXIT

ctl() { "$IDBMOUNTCTL" --data "$data" "$@"; }

alice=$(ctl client add alice)
bob=$(ctl client add bob)
etl=$(ctl pipeline add etl)

ctl mkstore alice/shop/orders --keypath '"id"' >/dev/null
ctl mkstore alice/shop/lines --keypath '["order","n"]' >/dev/null
ctl mkstore bob/notes/counters --keypath '"id"' --autoincrement >/dev/null
for i in 1 2 3 4 5; do
	ctl put alice/shop/orders "$i" "{\"id\":$i,\"total\":$((i * 10)),\"item\":\"thing $i\"}" >/dev/null
done
ctl put alice/shop/lines '[1,1]' '{"order":1,"n":1,"sku":"A"}' >/dev/null
ctl put alice/shop/lines '[1,2]' '{"order":1,"n":2,"sku":"B"}' >/dev/null
ctl put alice/shop/customers '"ann"' '{"name":"Ann","tags":["a","b"]}' >/dev/null
ctl put alice/shop/customers '"bo/b"' '{"name":"Bo B"}' >/dev/null
ctl put alice/shop/customers '{"~d":"2026-01-02T03:04:05.000Z"}' '{"when":"date key"}' >/dev/null
ctl put alice/shop/customers '{"~b":"AAEC"}' '"binary key"' >/dev/null
ctl put bob/notes/items '"todo"' '{"text":"write tests","done":false}' >/dev/null
ctl put bob/notes/items '"todo"' '{"text":"write tests","done":true}' >/dev/null
ctl put bob/notes/items '-1.5' '[1,2,3]' >/dev/null
ctl put bob/notes/items '"gone"' 'null' >/dev/null
ctl rm alice/shop/orders 5 >/dev/null
ctl rm bob/notes/items '"gone"' >/dev/null

# The receiver of the http sink refuses every batch: 400 parks it.
port_file=$tmp/receiver.port
python3 -c '
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(400)
        self.send_header("Content-Length", "0")
        self.end_headers()
    def log_message(self, *a):
        pass
s = http.server.HTTPServer(("127.0.0.1", 0), H)
open(sys.argv[1], "w").write(str(s.server_port))
s.serve_forever()
' "$port_file" &
receiver_pid=$!
for _ in $(seq 100); do [ -s "$port_file" ] && break; sleep 0.05; done
cat >"$tmp/idbmount.ini" <<EOF
[sink spool]
type = dir
path = $spool
max_age = 50ms

[sink refused]
type = http
url = http://127.0.0.1:$(cat "$port_file")/
max_age = 50ms
EOF

"$IDBMOUNT" -f --data "$data" --listen 127.0.0.1:0 --config "$tmp/idbmount.ini" "$mnt" \
	2>"$tmp/daemon.log" &
daemon_pid=$!
for _ in $(seq 400); do
	port=$(sed -n 's/.*serving .* (port \([0-9]*\)).*/\1/p' "$tmp/daemon.log")
	[ -n "$port" ] && break
	sleep 0.05
done
[ -n "$port" ] || { cat "$tmp/daemon.log" >&2; exit 1; }

# Records a browser pushed: origin browser and remembered mutation ids.
push() {
	curl -sf -H "Authorization: Bearer $alice" -H 'Content-Type: application/json' \
		--data "$2" "http://127.0.0.1:$port/v1/$1" >/dev/null
}
push schema '{"db":"app","version":2,"stores":[{"name":"drafts","keyPath":null,"autoIncrement":false,"indexes":[]},{"name":"prefs","keyPath":"k","autoIncrement":false,"indexes":[{"name":"by_v","keyPath":"v","unique":false}]}]}'
push push '{"mutations":[{"id":"m1","db":"app","store":"drafts","key":"d1","op":"put","value":{"body":"hello"}},{"id":"m2","db":"app","store":"prefs","key":"theme","op":"put","value":{"k":"theme","v":"dark"}},{"id":"m3","db":"app","store":"drafts","key":"d2","op":"put","value":{"body":"bye"}}]}'
push push '{"mutations":[{"id":"m4","db":"app","store":"drafts","key":"d2","op":"delete"}]}'

# Until the dir sink shipped every change and the http sink parked a batch.
for _ in $(seq 600); do
	status=$(ctl status --json)
	if python3 -c '
import json, sys
s = json.loads(sys.argv[1])
by = {k["name"]: k for k in s["sinks"]}
sys.exit(0 if by["spool"]["cursor"] >= s["last_seq"] and by["refused"]["parked"] >= 1 else 1)
' "$status"; then
		break
	fi
	sleep 0.05
done
fusermount3 -u "$mnt"
wait "$daemon_pid"
daemon_pid=

echo "-- A data directory of idbmount before schema versions, made by"
echo "-- tests/ops/make-schema0-datadir.sh; the tokens of its clients:"
echo "-- token alice $alice"
echo "-- token bob $bob"
echo "-- token etl $etl"
echo "-- files the dir sink 'spool' shipped:"
(cd "$spool" && ls) | sed 's/^/-- shipped /'
sqlite3 "$data/idbmount.db" .dump
echo "PRAGMA application_id = $(sqlite3 "$data/idbmount.db" 'PRAGMA application_id');"
echo "PRAGMA user_version = $(sqlite3 "$data/idbmount.db" 'PRAGMA user_version');"
