#!/usr/bin/env python3
"""bench_import.py - on-demand benchmark of `idbmountctl import`.

Not part of the test suite (not registered with ctest). Run as root when
--with-daemon (it mounts):

    /usr/bin/python3 tests/bench/bench_import.py [--records 100000,1000000]
        [--rounds 3] [--build build-release | --bin DIR] [--with-daemon]

It measures a Release build it makes in --build first, or the binaries in
--bin as they are (release_build.py), and says which.

What it does, for each count N of --records:
  1. Writes N records of ~400 bytes (bench_sync.py's values, each with its
     key in "id") as JSON lines: what a Hadoop job hands back.
  2. Times `idbmountctl import bench/shop/orders FILE` into a fresh data
     directory whose store has keyPath "id" (the daemon not running), with
     its CPU time (user + system) and peak RSS from wait4.
  3. With --with-daemon, the same with the daemon mounted on the data
     directory (the import then also waits until the mount shows what it
     wrote); the daemon's CPU time is counted too.
  4. Runs tests/bench/sqlite_loop.c (cc -O2 -lsqlite3) on the same values:
     a plain C loop inserting the rows a put makes (record + change row),
     1,000 per transaction, with the store's settings. Its clock covers
     the inserts only (it reads the values into memory first, so its RSS
     grows with N); its CPU time is the whole process's.
  5. Does 2-4 --rounds times, the order rotating, and prints each run and
     a markdown table of the medians with the ratio to the C loop. Target:
     an import at >= 0.6 of the C loop, its RSS independent of N.
"""
import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_sync import REPO, Daemon, cpu_seconds, is_mounted, make_value  # noqa: E402
import release_build  # noqa: E402


def run_measured(args):
    """Runs `args`; returns (seconds, CPU seconds, peak RSS in MiB, stdout)."""
    t0 = time.monotonic()
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    _, status, ru = os.wait4(proc.pid, 0)
    elapsed = time.monotonic() - t0
    out, err = proc.stdout.read(), proc.stderr.read()
    proc.stdout.close()
    proc.stderr.close()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit("%s failed (%d): %s%s" % (args, proc.returncode, out.decode(),
                                                   err.decode()))
    return elapsed, ru.ru_utime + ru.ru_stime, ru.ru_maxrss / 1024, out.decode()


def import_run(build, tmp, lines_path, n, with_daemon):
    """One import into a fresh data directory: (seconds, CPU seconds of
    idbmountctl (+ the daemon's), peak RSS of idbmountctl, load)."""
    ctl = os.path.join(build, "idbmountctl")
    run = tempfile.mkdtemp(prefix="run.", dir=tmp)
    data, mnt = os.path.join(run, "data"), os.path.join(run, "mnt")
    try:
        subprocess.run([ctl, "--data", data, "client", "add", "bench"], check=True,
                       capture_output=True)
        subprocess.run([ctl, "--data", data, "mkstore", "bench/shop/orders", "--keypath",
                        '"id"'], check=True, capture_output=True)
        args = [ctl, "--data", data, "import", "bench/shop/orders", lines_path]
        load = os.getloadavg()[0]
        if not with_daemon:
            s, cpu, rss, _ = run_measured(args)
        else:
            with Daemon(build, data, mnt, os.path.join(run, "daemon.log")) as d:
                cpu0 = cpu_seconds(d.proc.pid)
                s, cpu, rss, _ = run_measured(args)
                cpu += cpu_seconds(d.proc.pid) - cpu0
        out = subprocess.run([ctl, "--data", data, "log", "--since", str(n - 1)],
                             check=True, capture_output=True, text=True).stdout
        if '"seq":%d,' % n not in out:
            raise SystemExit("the import did not log %d changes: %s" % (n, out[:300]))
    finally:
        if is_mounted(mnt):
            subprocess.run(["fusermount3", "-u", "-z", mnt], check=False)
        shutil.rmtree(run, ignore_errors=True)
    return s, cpu, rss, load


def c_loop_run(exe, tmp, values_path, n):
    """The C loop on a fresh database: (seconds by its own clock, which
    covers the inserts only, not reading the values; CPU seconds and peak
    RSS of the whole process; load)."""
    db = os.path.join(tmp, "loop.db")
    for leftover in (db, db + "-wal", db + "-shm"):
        if os.path.exists(leftover):
            os.unlink(leftover)
    load = os.getloadavg()[0]
    _, cpu, rss, out = run_measured([exe, db, str(n), values_path])
    return float(out.split()[1]), cpu, rss, load


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 1)[1])
    ap.add_argument("--records", default="100000,1000000",
                    help="record counts, comma-separated")
    ap.add_argument("--rounds", type=int, default=3)
    release_build.add_arguments(ap)
    ap.add_argument("--with-daemon", action="store_true",
                    help="also import with the daemon mounted on the data directory")
    a = ap.parse_args()
    counts = [int(c) for c in a.records.split(",")]
    idbmount, _, where = release_build.binaries(a)
    build = os.path.dirname(idbmount)
    kinds = ["import"] + (["import, daemon running"] if a.with_daemon else []) + ["C loop"]
    tmp = tempfile.mkdtemp(prefix="bench_import.")
    loop_exe = os.path.join(tmp, "sqlite_loop")
    subprocess.run(["cc", "-O2", "-o", loop_exe,
                    os.path.join(REPO, "tests", "bench", "sqlite_loop.c"), "-lsqlite3"], check=True)
    runs = {}  # (n, kind) -> [(records/s, cpu s, rss MiB, load)]
    avg = {}
    try:
        for n in counts:
            rng = random.Random(1)
            lines_path = os.path.join(tmp, "records.%d.jsonl" % n)
            values_path = os.path.join(tmp, "values.%d.jsonl" % n)
            with open(lines_path, "w") as lf, open(values_path, "w") as vf:
                for i in range(n):
                    text = json.dumps(make_value(i, rng), separators=(",", ":"))
                    lf.write(text + "\n")
                    vf.write(text + "\n")
            avg[n] = os.path.getsize(lines_path) / n
            for r in range(a.rounds):
                order = kinds[r % len(kinds):] + kinds[:r % len(kinds)]
                for kind in order:
                    if kind == "C loop":
                        s, cpu, rss, load = c_loop_run(loop_exe, tmp, values_path, n)
                    else:
                        s, cpu, rss, load = import_run(build, tmp, lines_path, n,
                                                       kind != "import")
                    runs.setdefault((n, kind), []).append((n / s, cpu, rss, load))
                    print("%d records, round %d: %s: %.0f records/s, %.1f s, CPU %.1f s, "
                          "peak RSS %.1f MiB, load %.1f" % (n, r + 1, kind, n / s, s, cpu, rss,
                                                           load), flush=True)
            os.unlink(lines_path)
            os.unlink(values_path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    loads = [x[3] for v in runs.values() for x in v]
    print()
    print("idbmountctl import of records with an inline key (keyPath \"id\"), %d round(s), "
          "medians; %d CPUs, load average %.1f-%.1f at the starts; %s"
          % (a.rounds, os.cpu_count(), min(loads), max(loads), where))
    print()
    print("| records | what | records/s | vs C loop | CPU s | CPU us/record | peak RSS |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    met = True
    for n in counts:
        loop = statistics.median(x[0] for x in runs[(n, "C loop")])
        for kind in kinds:
            v = runs[(n, kind)]
            rate = statistics.median(x[0] for x in v)
            cpu = statistics.median(x[1] for x in v)
            rss = statistics.median(x[2] for x in v)
            if kind == "import":
                met = met and rate / loop >= 0.6
            print("| %d (~%d B) | %s | %.0f | %.2f | %.1f | %.1f | %.1f MiB |"
                  % (n, avg[n], kind, rate, rate / loop, cpu, cpu * 1e6 / n, rss))
    print()
    print("Target: import >= 0.6 of the C loop: %s" % ("met" if met else "NOT met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
