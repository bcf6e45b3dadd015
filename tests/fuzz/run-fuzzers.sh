#!/usr/bin/env bash
# run-fuzzers.sh - builds the libFuzzer targets and runs each one on its seed corpus.
#
#   tests/fuzz/run-fuzzers.sh [--seconds N] [--build-dir DIR] [TARGET...]
#
# Builds DIR (default build-fuzz/) with clang (-DIDBMOUNT_FUZZ=ON: coverage
# instrumentation, ASan and UBSan in every library), then runs each TARGET
# (default: all, one after the other) for N seconds (default 15) on
# tests/fuzz/corpus/TARGET/. A run fails on a crash, a sanitizer report, a
# leak, a violated property (the targets abort on one), an input that takes
# over 60 s or memory past 2 GiB; the reproducer is then left in
# DIR/fuzz/TARGET/ and its path and the command that replays it are
# printed. Exits non-zero when any target failed.
#
# Inputs that found new coverage go to DIR/fuzz/TARGET/new/, not into the
# repository's corpus; to keep some, add them by hand or with libFuzzer's
# merge (DIR/tests/fuzz/fuzz_TARGET -merge=1 tests/fuzz/corpus/TARGET
# DIR/fuzz/TARGET/new). The corpus itself is made by make-corpus.py.
#
# tests/run-all.sh (CI) runs this with the defaults; a longer campaign is
# e.g. `tests/fuzz/run-fuzzers.sh --seconds 600` (80 minutes for the eight), or one
# target: `tests/fuzz/run-fuzzers.sh --seconds 3600 http`.
set -euo pipefail

usage() {
	echo "usage: $0 [--seconds N] [--build-dir DIR] [TARGET...]" >&2
	exit 2
}

src_dir=$(cd "$(dirname "$0")/../.." && pwd)
seconds=15
build_dir=$src_dir/build-fuzz
targets=()
while [ $# -gt 0 ]; do
	case "$1" in
	--seconds)
		[ $# -ge 2 ] || usage
		seconds=$2
		shift 2
		;;
	--build-dir)
		[ $# -ge 2 ] || usage
		build_dir=$2
		shift 2
		;;
	-h | --help)
		sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'
		exit 0
		;;
	-*) usage ;;
	*)
		targets+=("$1")
		shift
		;;
	esac
done
case "$seconds" in
'' | *[!0-9]*) usage ;;
esac
if [ "${#targets[@]}" -eq 0 ]; then
	for dir in "$src_dir"/tests/fuzz/corpus/*/; do
		targets+=("$(basename "$dir")")
	done
fi

if ! command -v clang >/dev/null 2>&1; then
	echo "fuzz: clang is missing: run mount-helpers/install-deps.sh --test" >&2
	exit 1
fi
echo "fuzz: building $build_dir (clang, libFuzzer, ASan, UBSan)"
cmake -S "$src_dir" -B "$build_dir" -DCMAKE_C_COMPILER=clang -DIDBMOUNT_FUZZ=ON \
	-DIDBMOUNT_WERROR=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build_dir" --target fuzz_targets --parallel "$(nproc 2>/dev/null || echo 2)"

# Leaks and undefined behaviour are failures; the rest of the options are
# libFuzzer's defaults made explicit.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:detect_stack_use_after_return=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}

failed=()
for t in "${targets[@]}"; do
	bin=$build_dir/tests/fuzz/fuzz_$t
	corpus=$src_dir/tests/fuzz/corpus/$t
	if [ ! -x "$bin" ] || [ ! -d "$corpus" ]; then
		echo "fuzz: no target '$t' (want one of: $(ls "$src_dir/tests/fuzz/corpus" | tr '\n' ' '))" >&2
		exit 2
	fi
	work=$build_dir/fuzz/$t
	rm -rf "$work"
	mkdir -p "$work/new"
	echo "fuzz: $t for ${seconds}s"
	status=0
	# The first corpus directory takes new inputs; the seeds are read only.
	"$bin" -max_total_time="$seconds" -timeout=60 -rss_limit_mb=2048 -print_final_stats=1 \
		-artifact_prefix="$work/" "$work/new" "$corpus" >"$work/log" 2>&1 || status=$?
	grep -a -E '^(Done|stat::new_units_added)' "$work/log" |
		sed 's/^/fuzz:   /' || true
	if [ "$status" -ne 0 ]; then
		echo "fuzz: $t FAILED (exit $status); the end of its log ($work/log):" >&2
		tail -n 60 "$work/log" | sed 's/^/    /' >&2
		for r in "$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* \
			"$work"/slow-unit-*; do
			[ -e "$r" ] || continue
			echo "fuzz: reproducer: $r" >&2
			echo "fuzz: replay it:  $bin $r" >&2
		done
		failed+=("$t")
	fi
done

if [ "${#failed[@]}" -gt 0 ]; then
	echo "fuzz: failed: ${failed[*]}" >&2
	exit 1
fi
echo "fuzz: ${#targets[@]} targets, ${seconds}s each, no failure"
