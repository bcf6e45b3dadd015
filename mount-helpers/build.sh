#!/usr/bin/env bash
# build.sh - configures and builds idbmount with CMake.
#
#   mount-helpers/build.sh [--sanitize | --tsan] [BUILD_DIR]
#
# Without an option: a RelWithDebInfo build in BUILD_DIR (default build/).
# With --sanitize: a Debug build with AddressSanitizer and UBSan
# (-DIDBMOUNT_SANITIZE=ON) in BUILD_DIR (default build-asan/); with --tsan a
# RelWithDebInfo build with ThreadSanitizer (-DIDBMOUNT_TSAN=ON, default
# build-tsan/). Each is kept apart so that all can live side by side.
# Dependencies: mount-helpers/install-deps.sh.
set -euo pipefail

usage() {
	echo "usage: $0 [--sanitize | --tsan] [BUILD_DIR]" >&2
	exit 2
}

sanitize=0
build_dir=
for arg in "$@"; do
	case "$arg" in
	--sanitize) sanitize=1 ;;
	--tsan) sanitize=thread ;;
	-h | --help)
		echo "usage: $0 [--sanitize | --tsan] [BUILD_DIR]"
		exit 0
		;;
	-*) usage ;;
	*)
		[ -z "$build_dir" ] || usage
		build_dir=$arg
		;;
	esac
done

src_dir=$(cd "$(dirname "$0")/.." && pwd)
if [ "$sanitize" = 1 ]; then
	build_dir=${build_dir:-$src_dir/build-asan}
	config=(-DCMAKE_BUILD_TYPE=Debug -DIDBMOUNT_SANITIZE=ON -DIDBMOUNT_TSAN=OFF)
elif [ "$sanitize" = thread ]; then
	build_dir=${build_dir:-$src_dir/build-tsan}
	config=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DIDBMOUNT_SANITIZE=OFF -DIDBMOUNT_TSAN=ON)
else
	build_dir=${build_dir:-$src_dir/build}
	config=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DIDBMOUNT_SANITIZE=OFF -DIDBMOUNT_TSAN=OFF)
fi

# The pytest suites run under the python3 that has Debian's python3-pytest
# (install-deps.sh). A python3 earlier in PATH (pyenv, a virtualenv) usually
# lacks it, so ctest is pointed at Debian's own unless told otherwise.
if [ -n "${IDBMOUNT_PYTHON3:-}" ]; then
	config+=("-DPYTHON3=$IDBMOUNT_PYTHON3")
elif [ -x /usr/bin/python3 ]; then
	config+=(-DPYTHON3=/usr/bin/python3)
fi

jobs=$(nproc 2>/dev/null || echo 2)
echo "build: configuring $build_dir (${config[*]})"
cmake -S "$src_dir" -B "$build_dir" "${config[@]}"
echo "build: building $build_dir with $jobs jobs"
cmake --build "$build_dir" --parallel "$jobs"
