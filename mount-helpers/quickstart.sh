#!/usr/bin/env bash
# quickstart.sh - from a fresh Debian 12 to a mounted tree in one command:
#
#   mount-helpers/quickstart.sh [MOUNTPOINT [IDBMOUNT OPTIONS...]]
#
# Installs the build dependencies, builds into build/, makes the default data
# directory ($IDBMOUNT_DATA, else ~/.local/share/idbmount), creates a demo
# client `demo` with a few records the first time (its token is printed once
# and kept in DATADIR/demo.token, mode 600), then runs idbmount in the
# foreground at MOUNTPOINT (default /mnt/idb), serving the sync endpoint and
# the demo page on http://127.0.0.1:8750/ (the address to open, with the demo
# client's token in it, is printed). Ctrl-C, SIGTERM or
# `fusermount3 -u MOUNTPOINT` unmounts it. Options after MOUNTPOINT go to
# idbmount, e.g. `quickstart.sh /mnt/idb -o cache=auto` or `--listen
# 0.0.0.0:8750` to open the demo from another machine.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
mountpoint=${1:-/mnt/idb}
[ $# -gt 0 ] && shift

bash "$root/mount-helpers/install-deps.sh"
bash "$root/mount-helpers/build.sh" "$root/build"
idbmount="$root/build/idbmount"
idbmountctl="$root/build/idbmountctl"

# The same default as the programs' own (src/util/datadir.c), made explicit so
# that the daemon, idbmountctl and this script agree.
if [ -z "${IDBMOUNT_DATA:-}" ]; then
	home=${HOME:-$(getent passwd "$(id -u)" | cut -d: -f6)}
	IDBMOUNT_DATA=${XDG_DATA_HOME:-$home/.local/share}/idbmount
fi
export IDBMOUNT_DATA
mkdir -p "$IDBMOUNT_DATA"
chmod 700 "$IDBMOUNT_DATA"
data=$IDBMOUNT_DATA
token_file="$data/demo.token"

if "$idbmountctl" --data "$data" client list 2>/dev/null | grep -qxF demo; then
	if [ -f "$token_file" ]; then
		echo "quickstart: client 'demo' exists; its token is in $token_file"
	else
		echo "quickstart: client 'demo' exists (its token was shown when it was made)"
	fi
else
	token=$("$idbmountctl" --data "$data" client add demo)
	(
		umask 077
		printf '%s\n' "$token" >"$token_file"
	)
	chmod 600 "$token_file"
	echo "quickstart: made client 'demo'; its token (shown once, kept in $token_file):"
	echo "  $token"
	"$idbmountctl" --data "$data" mkstore demo/shop/orders
	"$idbmountctl" --data "$data" mkstore demo/shop/customers
	put() { "$idbmountctl" --data "$data" put "$@" >/dev/null; }
	put demo/shop/orders 1 '{"item":"tea","qty":2,"status":"open"}'
	put demo/shop/orders 2 '{"item":"coffee","qty":1,"status":"shipped"}'
	put demo/shop/customers '"alice"' '{"name":"Alice","city":"Lyon"}'
	echo "quickstart: put 3 demo records into demo/shop"
fi

mountpoint=$(realpath -m -- "$mountpoint")
# A daemon that died leaves its mount behind ("Transport endpoint is not
# connected"); clear that. A live mount is left alone.
if findmnt -rn --mountpoint "$mountpoint" >/dev/null 2>&1; then
	if stat -- "$mountpoint" >/dev/null 2>&1; then
		fstype=$(findmnt -rn -o FSTYPE --mountpoint "$mountpoint" | tail -n 1)
		echo "quickstart: $mountpoint is already mounted ($fstype);" \
			"unmount it first (fusermount3 -u $mountpoint)" >&2
		exit 1
	fi
	echo "quickstart: unmounting the stale mount at $mountpoint"
	fusermount3 -u "$mountpoint" 2>/dev/null || fusermount3 -u -z "$mountpoint"
fi
mkdir -p -- "$mountpoint"

listen=${IDBMOUNT_LISTEN:-127.0.0.1:8750}
echo "quickstart: mounting $data at $mountpoint; Ctrl-C (or fusermount3 -u $mountpoint) stops it"
if [ -f "$token_file" ]; then
	echo "quickstart: the demo page (a small app syncing its IndexedDB here):"
	echo "  http://$listen/#token=$(cat "$token_file")"
fi
echo "quickstart: try  ls $mountpoint/demo/shop/orders  and  cat $mountpoint/demo/shop/orders/1.json"
exec "$idbmount" -f --data "$data" "$@" "$mountpoint"
