#!/usr/bin/env bash
# run-all.sh - every test, from a fresh Debian 12, as CI runs them:
#
#   tests/run-all.sh [--no-sanitize]
#
# 1. installs build and test dependencies (mount-helpers/install-deps.sh
#    --test), which also makes sure /dev/fuse works: no test skips for lack
#    of FUSE;
# 2. builds build/ (RelWithDebInfo) and runs its ctest: unit tests and the
#    pytest suites on a real mount, three at a time (they mostly wait on
#    mounts, sockets and flush timers, and each uses its own directories
#    and a port the kernel picks, so three share 2 CPUs well); also builds
#    build-release/ (Release, -O3), not to test it but because -O3 shows
#    GCC warnings the other builds do not (every build here treats
#    warnings as errors: build.sh);
# 3. builds build-asan/ (Debug, AddressSanitizer + UBSan) and runs the same
#    ctest there, so memory errors, leaks and undefined behaviour fail the
#    run; its stress tests (signals under load, kills during deliveries,
#    thousands of event streams) run at a quarter of their size
#    (IDBMOUNT_STRESS=0.25): the same paths, with fewer repeats;
# 4. builds build-tsan/ (ThreadSanitizer) and runs the sync suite there:
#    a push is parsed on two threads, next to the notifier, the watch, the
#    checkpointer and the event streams, so a data race fails the run. Two
#    tests are left out of this pass only (they run in steps 2 and 3): one
#    measures the daemon's memory per idle stream, which ThreadSanitizer's
#    shadow memory multiplies, the other opens thousands of event streams,
#    which it slows past the budget. The mount suite ran clean under it
#    too, but is not repeated here, to keep the whole run under 20 minutes.
# 5. builds build-fuzz/ (clang, libFuzzer, ASan, UBSan) and runs each
#    fuzz target of tests/fuzz for 10 s on its seed corpus
#    (tests/fuzz/run-fuzzers.sh, about 2 minutes in all): a crash, a sanitizer
#    report or a violated property fails the run and prints the
#    reproducer's path.
#    (Steps 3, 4 and 5 are skipped with --no-sanitize, for a quick local
#    run.)
#
# Stops at the first failing step, so the last ctest summary printed is
# always the one that decided the exit status; exits non-zero on any
# failure, including a ctest run in which no test ran.
set -euo pipefail
cd "$(dirname "$0")/.."

sanitize=1
for arg in "$@"; do
	case "$arg" in
	--no-sanitize) sanitize=0 ;;
	*)
		echo "usage: $0 [--no-sanitize]" >&2
		exit 2
		;;
	esac
done

# run_ctest BUILD_DIR [CTEST_ARGS...]: ctest with its output shown; fails
# when a test failed or when no test ran at all.
run_ctest() {
	local dir=$1 log status=0
	shift
	log=$(mktemp)
	echo "==> ctest --test-dir $dir $*"
	ctest --test-dir "$dir" --output-on-failure --no-tests=error "$@" 2>&1 | tee "$log" ||
		status=$?
	if grep -q "No tests were found" "$log" ||
		! grep -Eq "tests passed, [0-9]+ tests? failed out of [1-9][0-9]*" "$log"; then
		echo "run-all: no test ran in $dir" >&2
		status=1
	fi
	rm -f "$log"
	return "$status"
}

echo "==> installing dependencies"
bash mount-helpers/install-deps.sh --test

echo "==> building build/"
bash mount-helpers/build.sh build
echo "==> building build-release/ (Release: built with warnings as errors, not tested)"
bash mount-helpers/build.sh --release build-release
if [ "$sanitize" = 1 ]; then
	echo "==> building build-asan/ (AddressSanitizer, UBSan)"
	bash mount-helpers/build.sh --sanitize build-asan
	echo "==> building build-tsan/ (ThreadSanitizer)"
	bash mount-helpers/build.sh --tsan build-tsan
fi

run_ctest build -j3
if [ "$sanitize" = 1 ]; then
	# Leaks and undefined behaviour end the process with an error, which the
	# tests see as a failing daemon or tool.
	export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:halt_on_error=1:detect_stack_use_after_return=1}
	export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
	IDBMOUNT_STRESS=0.25 run_ctest build-asan -j3
	unset ASAN_OPTIONS UBSAN_OPTIONS
	# The first race reported ends the daemon (halt_on_error), which the
	# tests see as a failing daemon.
	export TSAN_OPTIONS=${TSAN_OPTIONS:-halt_on_error=1:second_deadlock_stack=1}
	PYTEST_ADDOPTS="-k 'not test_a_thousand_idle_streams and not test_thousands_of_streams'" \
		run_ctest build-tsan -R '^sync$'
	# The push writer's unit tests, and idbmountctl import, which reads and
	# lays out lines on a second thread.
	run_ctest build-tsan -R '^unit_store$'
	echo "==> tests/fs/test_import.py on build-tsan/"
	IDBMOUNT_BIN=$PWD/build-tsan/idbmount IDBMOUNTCTL_BIN=$PWD/build-tsan/idbmountctl \
		/usr/bin/python3 -m pytest -q -p no:cacheprovider tests/fs/test_import.py
	unset TSAN_OPTIONS
	echo "==> fuzzing (tests/fuzz/run-fuzzers.sh)"
	bash tests/fuzz/run-fuzzers.sh --seconds 10 --build-dir build-fuzz
fi
