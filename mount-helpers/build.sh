#!/usr/bin/env bash
# build.sh - configures and builds idbmount with CMake.
#
#   mount-helpers/build.sh [--sanitize | --tsan | --release] [BUILD_DIR]
#
# Without an option: a RelWithDebInfo build in BUILD_DIR (default build/).
# With --sanitize: a Debug build with AddressSanitizer and UBSan
# (-DIDBMOUNT_SANITIZE=ON) in BUILD_DIR (default build-asan/); with --tsan a
# RelWithDebInfo build with ThreadSanitizer (-DIDBMOUNT_TSAN=ON, default
# build-tsan/); with --release a Release build (-O3, default
# build-release/), which CI builds because -O3 makes GCC see more (its
# format and bounds warnings follow inlined calls). Each is kept apart so
# that all can live side by side. Every build here treats warnings as
# errors (-DIDBMOUNT_WERROR=ON): this script is what CI and the test
# command use, on the compiler they know; a plain `cmake` build does not.
# Dependencies: mount-helpers/install-deps.sh.
set -euo pipefail

usage() {
	echo "usage: $0 [--sanitize | --tsan | --release] [BUILD_DIR]" >&2
	exit 2
}

variant=normal
build_dir=
for arg in "$@"; do
	case "$arg" in
	--sanitize) variant=asan ;;
	--tsan) variant=tsan ;;
	--release) variant=release ;;
	-h | --help)
		echo "usage: $0 [--sanitize | --tsan | --release] [BUILD_DIR]"
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
if [ "$variant" = asan ]; then
	build_dir=${build_dir:-$src_dir/build-asan}
	config=(-DCMAKE_BUILD_TYPE=Debug -DIDBMOUNT_SANITIZE=ON -DIDBMOUNT_TSAN=OFF)
elif [ "$variant" = tsan ]; then
	build_dir=${build_dir:-$src_dir/build-tsan}
	config=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DIDBMOUNT_SANITIZE=OFF -DIDBMOUNT_TSAN=ON)
elif [ "$variant" = release ]; then
	build_dir=${build_dir:-$src_dir/build-release}
	config=(-DCMAKE_BUILD_TYPE=Release -DIDBMOUNT_SANITIZE=OFF -DIDBMOUNT_TSAN=OFF)
else
	build_dir=${build_dir:-$src_dir/build}
	config=(-DCMAKE_BUILD_TYPE=RelWithDebInfo -DIDBMOUNT_SANITIZE=OFF -DIDBMOUNT_TSAN=OFF)
fi

config+=(-DIDBMOUNT_WERROR=ON)

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
