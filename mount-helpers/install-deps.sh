#!/usr/bin/env bash
# install-deps.sh - installs what building (and, with --test, testing)
# idbmount needs on Debian 12, and makes sure FUSE is usable.
#
#   mount-helpers/install-deps.sh [--test]
#
# Idempotent and quiet when nothing is missing: each package is checked with
# dpkg-query, `apt-get update` runs only when something has to be installed,
# and only the missing packages are installed (no recommends). Runs without a
# terminal or standard input (CI, containers). Needs root, or sudo.
set -euo pipefail

usage() {
	echo "usage: $0 [--test]" >&2
	exit 2
}

with_tests=0
for arg in "$@"; do
	case "$arg" in
	--test) with_tests=1 ;;
	-h | --help)
		echo "usage: $0 [--test]   install build (and test) dependencies"
		exit 0
		;;
	*) usage ;;
	esac
done

# What building needs: the compiler, CMake, and the libraries CMakeLists.txt
# asks pkg-config for (fuse3, sqlite3, jansson, libcrypto; curl, microhttpd
# and inih for the HTTP endpoint, the sinks and the config file; zlib for the
# webhdfs sink's gzip), plus fuse3 for fusermount3.
build_packages=(
	build-essential cmake pkg-config
	libfuse3-dev fuse3
	libsqlite3-dev libjansson-dev libssl-dev
	libcurl4-openssl-dev libmicrohttpd-dev libinih-dev zlib1g-dev
)

# What `ctest` needs: cmocka for tests/unit, pytest for the suites that drive
# a real mount, and every tool those suites run on the mount (getfattr/
# setfattr from attr, vim, rsync, jq, tar, diff, mount/umount/findmnt, ps,
# strace to count what `ls -l` asks of the mount);
# openssl makes the self-signed certificate of the HTTPS test (tests/sync);
# logrotate runs mount-helpers/idbmount.logrotate in tests/fs; systemd
# brings systemd-analyze, which checks the packaged unit offline (the
# package test; nothing makes systemd PID 1 in a container).
# nginx is the proxy in front of several daemons in tests/nodes (started
# there with its own config and prefix; the system service is not used).
# clang builds the libFuzzer targets (tests/fuzz); -fsanitize=fuzzer,address
# needs clang's runtimes (libclang_rt.fuzzer, .asan, .ubsan), which are in
# libclang-rt-14-dev, only recommended by clang's packages.
test_packages=(
	libcmocka-dev
	python3 python3-pytest
	jq attr rsync vim-nox tar findutils grep sed diffutils coreutils
	procps mount util-linux strace
	openssl logrotate systemd nginx
	clang libclang-rt-14-dev
)

# Browser tests (tests/web): node runs them, npm installs their two npm
# packages (playwright-core, fake-indexeddb), Debian's chromium is the
# browser playwright-core drives. Installed with --test.
browser_test_packages=(nodejs npm chromium)

packages=("${build_packages[@]}")
if [ "$with_tests" = 1 ]; then
	packages+=("${test_packages[@]}" "${browser_test_packages[@]}")
fi

export DEBIAN_FRONTEND=noninteractive

as_root() {
	if [ "$(id -u)" = 0 ]; then
		"$@"
	elif command -v sudo >/dev/null 2>&1; then
		sudo -n env DEBIAN_FRONTEND=noninteractive "$@"
	else
		echo "install-deps: need root (or sudo) to run: $*" >&2
		exit 1
	fi
}

# installed PACKAGE: true when dpkg knows PACKAGE as installed. node and npm
# count as installed when their commands run: a machine may have Node.js
# from NodeSource, whose nodejs package carries npm and conflicts with
# Debian's npm package.
installed() {
	case "$1" in
	nodejs) command -v node >/dev/null 2>&1 && return 0 ;;
	npm) command -v npm >/dev/null 2>&1 && return 0 ;;
	esac
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

missing=()
for p in "${packages[@]}"; do
	installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
	echo "install-deps: installing ${missing[*]}"
	apt_opts=(-y -q -o DPkg::Lock::Timeout=300)
	as_root apt-get "${apt_opts[@]}" update
	# Packages such as nginx start their system service when installed;
	# nothing here needs those services (the tests start their own nginx),
	# and on a machine whose port 80 is taken nginx's would fail the
	# install. A policy-rc.d that says 101 stops every service start during
	# this install (Debian's way, invoke-rc.d(8)); one the machine already
	# has is left alone.
	policy=/usr/sbin/policy-rc.d
	made_policy=0
	if [ ! -e "$policy" ]; then
		as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
		made_policy=1
	fi
	status=0
	as_root apt-get "${apt_opts[@]}" install --no-install-recommends "${missing[@]}" || status=$?
	if [ "$made_policy" = 1 ]; then
		as_root rm -f "$policy"
	fi
	[ "$status" = 0 ] || exit "$status"
	for p in "${missing[@]}"; do
		if ! installed "$p"; then
			echo "install-deps: $p is still not installed" >&2
			exit 1
		fi
	done
else
	echo "install-deps: all ${#packages[@]} packages already installed"
fi

# FUSE: the tests and the quick start mount for real, so a machine without a
# usable /dev/fuse is an error here, not a reason to skip later. Containers
# often lack the device node even when the host kernel has FUSE.
if [ ! -c /dev/fuse ]; then
	if command -v modprobe >/dev/null 2>&1; then
		as_root modprobe fuse 2>/dev/null || true
	fi
fi
if [ ! -c /dev/fuse ]; then
	echo "install-deps: creating /dev/fuse (char 10,229)"
	as_root mknod -m 0666 /dev/fuse c 10 229
fi
if ! (exec 3<>/dev/fuse) 2>/dev/null; then
	echo "install-deps: /dev/fuse exists but cannot be opened; FUSE mounts will" \
		"not work here (in a container, run it with --device /dev/fuse" \
		"--cap-add SYS_ADMIN)" >&2
	exit 1
fi
