#!/usr/bin/env python3
"""bench_sync.py - on-demand benchmark of the sync endpoint's ingest rate.

Not part of the test suite (not registered with ctest). Run as root (it
mounts):

    /usr/bin/python3 tests/bench/bench_sync.py [--mutations 100000]
        [--batch 1000] [--connections 1,2,4] [--rounds 3]
        [--build build-release | --bin DIR] [--compare DIR]

It measures a Release build it makes in --build first, or the binaries in
--bin as they are (release_build.py), and says which.

What it does:
  1. Starts a real daemon (fresh data directory and mount, HTTP on a free
     loopback port), makes a client and a store with out-of-line keys.
  2. Makes --mutations puts of ~400-byte JSON values (ids, names, a nested
     object, an array, free text), encodes them as /v1/push bodies of
     --batch mutations before the clock starts, then sends them over
     N keep-alive connections at once (the bodies dealt out in turn) and
     times until the last answer. On the clock a client only sends a body
     and reads the answer; every answer is checked once the clock stops
     (status 200, one "ok" result per mutation). Each count N of --connections gets its own
     fresh daemon; the daemon's CPU time (user + system, all threads) per
     mutation is steadier than wall time on a loaded machine.
  3. Compiles tests/bench/sqlite_loop.c (cc -O2 -lsqlite3) and runs it on
     the same values: a plain C loop inserting the same rows (record +
     change row) 1,000 per transaction, with the store's settings.
  4. Does 2-3 again, --rounds times, the order of the counts rotating, so that a
     change of load falls on each alike.
  5. Measures the time from a change on the mount to its event on
     /v1/events (median and max over --latency-samples changes), once.
  6. Prints each run, then a markdown table of the medians, side by side
     with the C loop. With --compare BUILD, each push run is made with that
     build too, right after, and a table compares the medians. Targets: >= 70,000 mutations/s through /v1/push on
     one connection, and more connections at least as fast as one; event
     latency within 100 ms.
"""
import argparse
import http.client
import json
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import release_build

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
WORDS = ("amber basil cedar delta ember fjord grove harbor indigo juniper kestrel "
         "lumen meadow nectar orchid pepper quartz river saffron timber umber "
         "velvet willow xenon yarrow zephyr").split()


def make_value(i, rng):
    """About 400 bytes of compact JSON."""
    return {
        "id": i,
        "name": " ".join(rng.choice(WORDS) for _ in range(3)),
        "customer": {"email": "user%d@example.com" % rng.randrange(10000),
                     "tier": rng.choice(["gold", "silver", "bronze"]),
                     "since": "2025-%02d-%02dT10:00:00.000Z" % (rng.randint(1, 12),
                                                                rng.randint(1, 28))},
        "items": [{"sku": "SKU-%05d" % rng.randrange(99999), "qty": rng.randint(1, 9),
                   "price": round(rng.random() * 100, 2)} for _ in range(3)],
        "note": " ".join(rng.choice(WORDS) for _ in range(12)),
        "paid": rng.random() < 0.5,
    }


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


class Daemon:
    def __init__(self, build, data, mnt, log):
        self.args = [os.path.join(build, "idbmount"), "-f", "--data", data,
                     "--listen", "127.0.0.1:0", mnt]
        self.mnt, self.log_path = mnt, log

    def __enter__(self):
        os.makedirs(self.mnt, exist_ok=True)
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(self.args, stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 30
        while True:
            with open(self.log_path) as f:
                m = re.search(r"\(port (\d+)\)", f.read())
            if m and is_mounted(self.mnt):
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("idbmount did not start: " + open(self.log_path).read())
            time.sleep(0.02)

    def __exit__(self, *exc):
        subprocess.run(["fusermount3", "-u", self.mnt], check=False)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


def post(conn, path, body, token):
    conn.request("POST", path, body=body, headers={"Authorization": "Bearer " + token,
                                                   "Content-Type": "application/json"})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise SystemExit("%s: %d %s" % (path, r.status, data[:300]))
    return json.loads(data)


def bench_push(port, token, bodies, batch, connections):
    """Pushes `bodies` (bytes) on `connections` connections at once and
    returns the seconds it took. A client does nothing on the clock but
    send a body and read the answer; the answers are parsed and checked
    once the clock has stopped, so that what is measured is the daemon
    (parsing an answer in Python took ~1 ms of a push's ~16)."""
    chunks = [bodies[i::connections] for i in range(connections)]
    errors = []
    answers = []
    headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}

    def send(mine):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        got = []
        try:
            for body in mine:
                conn.request("POST", "/v1/push", body=body, headers=headers)
                r = conn.getresponse()
                got.append((r.status, r.read()))
        except BaseException as e:  # reported below
            errors.append(repr(e))
        finally:
            conn.close()
            answers.extend(got)

    threads = [threading.Thread(target=send, args=(c,)) for c in chunks]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - t0
    for status, data in answers:
        results = json.loads(data).get("results") if status == 200 else None
        if not results or len(results) != batch or any(r["status"] != "ok" for r in results):
            errors.append((status, data[:300]))
    if errors or len(answers) != len(bodies):
        raise SystemExit("push failed (%d answers of %d): %r"
                         % (len(answers), len(bodies), errors[:3]))
    return elapsed


def cpu_seconds(pid):
    """User + system CPU time of process `pid` (all its threads) so far:
    the daemon's work, which a busy machine slows less than wall time."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def bench_c_loop(tmp, values_path, n):
    exe = os.path.join(tmp, "sqlite_loop")
    subprocess.run(["cc", "-O2", "-o", exe, os.path.join(REPO, "tests", "bench", "sqlite_loop.c"),
                    "-lsqlite3"], check=True)
    db = os.path.join(tmp, "loop.db")
    for leftover in (db, db + "-wal", db + "-shm"):  # a fresh database each round
        if os.path.exists(leftover):
            os.unlink(leftover)
    out = subprocess.run([exe, db, str(n), values_path], check=True,
                         capture_output=True, text=True).stdout.split()
    return float(out[1])


def bench_event_latency(port, token, mnt_store, samples):
    s = socket.create_connection(("127.0.0.1", port), timeout=30)
    # since=0: the stream first announces what is there already.
    s.sendall(("GET /v1/events?since=0 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
               "Authorization: Bearer %s\r\n\r\n" % (port, token)).encode())
    got = b""
    while b"event: change" not in got:
        got += s.recv(4096)
    lat = []
    for i in range(samples):
        got = b""
        t0 = time.monotonic()
        with open(os.path.join(mnt_store, "lat%d.json" % i), "w") as f:
            f.write('{"i": %d}\n' % i)
        while b"event: change" not in got:
            got += s.recv(4096)
        lat.append((time.monotonic() - t0) * 1000)
        time.sleep(0.02)
    s.close()
    return lat


def push_run(build, tmp, token_ctl, bodies, batch, connections, mutations, lat_samples):
    """One measurement on a fresh daemon and data directory: returns
    (seconds, daemon CPU seconds, load at the start, event latencies)."""
    run = tempfile.mkdtemp(prefix="run.", dir=tmp)
    data, mnt = os.path.join(run, "data"), os.path.join(run, "mnt")
    token = subprocess.run([token_ctl, "--data", data, "client", "add", "bench"], check=True,
                           capture_output=True, text=True).stdout.strip()
    lat = []
    try:
        with Daemon(build, data, mnt, os.path.join(run, "daemon.log")) as d:
            conn = http.client.HTTPConnection("127.0.0.1", d.port, timeout=60)
            post(conn, "/v1/schema", json.dumps({"db": "shop", "version": 1,
                                                 "stores": [{"name": "orders"}]}), token)
            conn.close()
            load = os.getloadavg()[0]
            cpu0 = cpu_seconds(d.proc.pid)
            push_s = bench_push(d.port, token, bodies, batch, connections)
            push_cpu = cpu_seconds(d.proc.pid) - cpu0
            if lat_samples:
                lat = bench_event_latency(d.port, token,
                                          os.path.join(mnt, "bench", "shop", "orders"),
                                          lat_samples)
    finally:
        if is_mounted(mnt):
            subprocess.run(["fusermount3", "-u", "-z", mnt], check=False)
        shutil.rmtree(run, ignore_errors=True)
    return push_s, push_cpu, load, lat


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n", 1)[1])
    ap.add_argument("--mutations", type=int, default=100000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--connections", default="1",
                    help="connection counts to measure, comma-separated (e.g. 1,2,4)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="rounds; each measures every connection count (in turn, the "
                         "order rotating) and the C loop; medians are printed")
    ap.add_argument("--latency-samples", type=int, default=50)
    release_build.add_arguments(ap)
    ap.add_argument("--compare", metavar="BUILD",
                    help="another build (e.g. of the code before a change): each push run "
                         "is made with it too, right after, and its medians printed beside")
    a = ap.parse_args()
    counts = [int(c) for c in a.connections.split(",")]
    if any(c < 1 for c in counts) or a.rounds < 1:
        raise SystemExit("--connections wants counts >= 1, --rounds >= 1")
    idbmount, ctl, where = release_build.binaries(a)
    build = os.path.dirname(idbmount)
    tmp = tempfile.mkdtemp(prefix="bench_sync.")
    rng = random.Random(1)
    values = [make_value(i, rng) for i in range(a.mutations)]
    values_path = os.path.join(tmp, "values.jsonl")
    with open(values_path, "w") as f:
        for v in values:
            f.write(json.dumps(v, separators=(",", ":")) + "\n")
    avg = os.path.getsize(values_path) / a.mutations
    bodies = []
    for start in range(0, a.mutations, a.batch):
        muts = [{"id": "m%d" % i, "db": "shop", "store": "orders", "key": i, "op": "put",
                 "value": values[i], "base": None}
                for i in range(start, min(start + a.batch, a.mutations))]
        bodies.append(json.dumps({"mutations": muts}, separators=(",", ":")).encode())
    runs = {c: [] for c in counts}  # (rate, cpu us per mutation, load)
    other = {c: [] for c in counts}  # the same, of --compare
    loops, lat = [], []
    try:
        for r in range(a.rounds):
            order = counts[r % len(counts):] + counts[:r % len(counts)]
            for c in order:
                want_lat = a.latency_samples if r == a.rounds - 1 and c == counts[0] else 0
                s, cpu, load, got = push_run(build, tmp, ctl, bodies, a.batch, c, a.mutations,
                                             want_lat)
                lat += got
                runs[c].append((a.mutations / s, cpu * 1e6 / a.mutations, load))
                print("round %d: %d connection(s): %.0f mutations/s, daemon CPU %.1f us per "
                      "mutation, load %.1f" % (r + 1, c, *runs[c][-1]), flush=True)
                if a.compare:
                    cb = os.path.abspath(a.compare)
                    s, cpu, load, _ = push_run(cb, tmp, os.path.join(cb, "idbmountctl"), bodies,
                                               a.batch, c, a.mutations, 0)
                    other[c].append((a.mutations / s, cpu * 1e6 / a.mutations, load))
                    print("round %d: %d connection(s), --compare: %.0f mutations/s, daemon CPU "
                          "%.1f us per mutation, load %.1f" % (r + 1, c, *other[c][-1]),
                          flush=True)
            loops.append(a.mutations / bench_c_loop(tmp, values_path, a.mutations))
            print("round %d: C loop: %.0f rows/s" % (r + 1, loops[-1]), flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    loop_rate = statistics.median(loops)
    one = statistics.median(x[0] for x in runs[counts[0]])
    print()
    print("Sync endpoint ingest: %d puts of ~%d-byte values, %d per push; %d round(s), "
          "medians; %d CPUs, load average %.1f-%.1f at the starts; daemon: %s"
          % (a.mutations, avg, a.batch, a.rounds, os.cpu_count(),
             min(x[2] for v in runs.values() for x in v),
             max(x[2] for v in runs.values() for x in v), where))
    print()
    print("| what | per second | vs C loop | vs %d connection(s) | daemon CPU per mutation |"
          % counts[0])
    print("|---|---:|---:|---:|---:|")
    for c in counts:
        rate = statistics.median(x[0] for x in runs[c])
        cpu = statistics.median(x[1] for x in runs[c])
        print("| POST /v1/push, %d connection(s) | %.0f | %.2f | %.2f | %.1f us |"
              % (c, rate, rate / loop_rate, rate / one, cpu))
    print("| plain C loop into SQLite (record + change row, 1,000/txn) | %.0f | 1.00 | | |"
          % loop_rate)
    if a.compare:
        print()
        print("--compare %s (CMAKE_BUILD_TYPE %s), in the same rounds (each run right after "
              "this build's):" % (a.compare, release_build.build_type(a.compare)))
        print()
        print("| connections | this build | --compare | ratio | daemon CPU per mutation, "
              "this / --compare |")
        print("|---:|---:|---:|---:|---:|")
        for c in counts:
            mine = statistics.median(x[0] for x in runs[c])
            theirs = statistics.median(x[0] for x in other[c])
            print("| %d | %.0f | %.0f | %.2fx | %.1f / %.1f us |"
                  % (c, mine, theirs, mine / theirs, statistics.median(x[1] for x in runs[c]),
                     statistics.median(x[1] for x in other[c])))
    print()
    if 1 in counts:
        single = statistics.median(x[0] for x in runs[1])
        print("Target >= 70,000 mutations/s through /v1/push on one connection: %s (%.0f)"
              % ("met" if single >= 70000 else "NOT met", single))
        more = [c for c in counts if c > 1]
        if more:
            worst = min(statistics.median(x[0] for x in runs[c]) for c in more)
            print("Target: %s connections at least as fast as one: %s (slowest %.2fx)"
                  % (" and ".join(map(str, more)), "met" if worst >= single else "NOT met",
                     worst / single))
    if lat:
        print("Mount change -> /v1/events event: median %.1f ms, max %.1f ms over %d changes "
              "(target 100 ms): %s" % (statistics.median(lat), max(lat), len(lat),
                                       "met" if max(lat) <= 100 else "NOT met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
