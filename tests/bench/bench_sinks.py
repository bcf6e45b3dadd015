#!/usr/bin/env python3
"""bench_sinks.py - on-demand benchmark of the flusher and the dir sink.

Not part of the test suite. Run as root:

    /usr/bin/python3 tests/bench/bench_sinks.py [--changes 1000000] [--size 400]
        [--build build-release | --bin DIR] [--out FILE]

It measures a Release build it makes in --build first, or the binaries in
--bin as they are (release_build.py), and says which.

What it does:
  1. Imports --changes records (about --size bytes of JSON each) with
     `idbmountctl import` into a fresh data directory, so the change log
     holds them before the daemon starts.
  2. Starts the daemon with one dir sink at the embedded defaults
     (max_records 10000, max_bytes 8M, fsync on) and times how long the
     flusher takes to ship the whole backlog into files (the sink's cursor,
     polled from `idbmountctl status --json`): changes/s.
  2b. Ships the same backlog again, into the WebHDFS test peer of
     tests/sinks/peers.py (a NameNode that redirects CREATE to a DataNode,
     both Python http.server on loopback, files on local disk) with a
     webhdfs sink at its defaults: changes/s. The peer is single-process
     Python, so this rate says as much about the peer as about the sink.
  3. The baseline, "this disk's limit": a plain C loop, compiled here, that
     writes the very same lines in the same batches the same durable way
     (temp file, write, fsync, rename, fsync of the directory), and the
     same without any fsync.
  4. End-to-end latency at defaults: --puts single `idbmountctl put`s, 20 ms
     apart, each timed from just before the put until its line is in a
     visible spool file (the directory is polled every millisecond): p50
     and p99.
  5. Prints a markdown table (also written to --out FILE, which it
     replaces: copy the table into tests/bench/RESULTS.md by hand).
Targets (src/DESIGN.md, "Targets"): >= 300,000 changes/s into dir files and
at least half the plain loop's rate; p99 end-to-end <= 1 s.
"""
import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "sinks"))
from peers import WebHdfsPeer  # noqa: E402  (the test peer, strict like HDFS)
import release_build  # noqa: E402

PLAIN_C = r"""
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
/* plain IN OUTDIR BATCH FSYNC: writes IN's lines in files of BATCH lines. */
int main(int argc, char **argv)
{
	FILE *in = fopen(argv[1], "rb");
	fseek(in, 0, SEEK_END);
	long size = ftell(in);
	fseek(in, 0, SEEK_SET);
	char *data = malloc(size);
	if (fread(data, 1, size, in) != (size_t)size) return 1;
	long batch = atol(argv[3]);
	int do_sync = atoi(argv[4]);
	int dirfd = open(argv[2], O_RDONLY | O_DIRECTORY);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	long lines = 0, n = 0;
	char *start = data, *end = data + size;
	while (start < end) {
		char *p = start;
		long k = 0;
		while (p < end && k < batch) {
			p = memchr(p, '\n', end - p) + 1;
			k++;
		}
		char tmp[64], fin[64];
		snprintf(tmp, sizeof(tmp), ".b%ld.tmp", n);
		snprintf(fin, sizeof(fin), "b%08ld.jsonl", n++);
		int fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		for (char *w = start; w < p;) {
			ssize_t got = write(fd, w, p - w);
			if (got <= 0) return 1;
			w += got;
		}
		if (do_sync) fsync(fd);
		close(fd);
		renameat(dirfd, tmp, dirfd, fin);
		if (do_sync) fsync(dirfd);
		lines += k;
		start = p;
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("%ld %.6f\n", lines, secs);
	return 0;
}
"""


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


class Bench:
    def __init__(self, args):
        self.args = args
        self.idbmount, self.ctl_bin, self.where = release_build.binaries(args)
        self.root = tempfile.mkdtemp(prefix="bench_sinks.", dir="/var/tmp")
        self.data = os.path.join(self.root, "data")
        self.mnt = os.path.join(self.root, "mnt")
        self.spool = os.path.join(self.root, "spool")
        os.makedirs(self.mnt)
        self.proc = None

    def ctl(self, *args, input=None):
        p = subprocess.run([self.ctl_bin, "--data", self.data, *args], input=input,
                           capture_output=True, text=True)
        if p.returncode:
            sys.exit("idbmountctl %s: %s" % (" ".join(args), p.stderr))
        return p.stdout

    def start(self, config):
        cfg = os.path.join(self.root, "bench.ini")
        with open(cfg, "w") as f:
            f.write(config)
        self.proc = subprocess.Popen([self.idbmount, "-f", "--data", self.data, "--config", cfg,
                                      self.mnt], stderr=open(os.path.join(self.root, "log"), "ab"),
                                     start_new_session=True)
        while not is_mounted(self.mnt):
            if self.proc.poll() is not None:
                sys.exit("idbmount exited")
            time.sleep(0.005)

    def stop(self):
        subprocess.run(["fusermount3", "-u", self.mnt])
        self.proc.wait(timeout=120)

    def cursor(self, name="spool"):
        st = json.loads(self.ctl("status", "--json"))
        [sink] = [k for k in st["sinks"] if k["name"] == name]
        return sink["cursor"], st["last_seq"]

    def make_backlog(self):
        self.ctl("client", "add", "bench")
        pad = max(0, self.args.size - 120)
        path = os.path.join(self.root, "records.jsonl")
        with open(path, "w") as f:
            for i in range(self.args.changes):
                v = {"id": i, "customer": {"name": "Customer %d" % (i % 977), "tier": i % 3},
                     "items": [i % 13, i % 7], "note": "n" * pad}
                f.write(json.dumps({"key": i, "value": v}) + "\n")
        t = time.monotonic()
        self.ctl("import", "bench/shop/orders", path)
        return time.monotonic() - t

    def ship_backlog(self):
        self.start("[sink spool]\ntype = dir\npath = %s\n" % self.spool)
        t0 = time.monotonic()
        last = self.cursor()[1]
        while self.cursor()[0] < last:
            time.sleep(0.05)
        secs = time.monotonic() - t0
        cpu = self.cpu_seconds()
        self.stop()
        return last, secs, cpu

    def ship_to_webhdfs(self):
        """The same backlog into the WebHDFS peer, by a sink of its own
        (it starts at the beginning of the change log)."""
        root = os.path.join(self.root, "hdfs")
        with WebHdfsPeer(root) as hdfs:
            self.start("[sink hdfs]\ntype = webhdfs\nurl = %s\npath = /data/idb\n"
                       "user = bench\n" % hdfs.url)
            t0 = time.monotonic()
            last = self.cursor("hdfs")[1]
            while self.cursor("hdfs")[0] < last:
                time.sleep(0.05)
            secs = time.monotonic() - t0
            self.stop()
        lines = 0
        for dirpath, _, names in os.walk(root):
            for n in names:
                if not n.startswith((".", "_")):
                    with open(os.path.join(dirpath, n), "rb") as f:
                        lines += sum(1 for _ in f)
        if lines != last:
            sys.exit("webhdfs: %d lines in the peer for %d changes" % (lines, last))
        shutil.rmtree(root, ignore_errors=True)
        return last / secs

    def cpu_seconds(self):
        """The daemon's CPU time so far (user + system, every thread): a
        figure that other work on the machine changes less than the rate."""
        with open("/proc/%d/stat" % self.proc.pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def plain_loop(self):
        src = os.path.join(self.root, "plain.c")
        exe = os.path.join(self.root, "plain")
        with open(src, "w") as f:
            f.write(PLAIN_C)
        subprocess.run(["cc", "-O2", "-o", exe, src], check=True)
        lines = os.path.join(self.root, "lines.jsonl")
        with open(lines, "wb") as out:
            for name in sorted(os.listdir(self.spool)):
                if not name.startswith("."):
                    with open(os.path.join(self.spool, name), "rb") as f:
                        shutil.copyfileobj(f, out)
        results = {}
        for sync in (1, 0):
            outdir = os.path.join(self.root, "plain%d" % sync)
            os.makedirs(outdir)
            subprocess.run(["sync"])
            n, secs = subprocess.run([exe, lines, outdir, "10000", str(sync)], check=True,
                                     capture_output=True, text=True).stdout.split()
            results[sync] = (int(n), float(secs))
        return results

    def latency(self):
        spool = os.path.join(self.root, "latency")
        self.start("[sink spool]\ntype = dir\npath = %s\n" % spool)
        seen = {}
        stop = threading.Event()

        def watch():
            known = set()
            while not stop.is_set():
                for name in os.listdir(spool):
                    if name.startswith(".") or name in known:
                        continue
                    known.add(name)
                    now = time.monotonic()
                    with open(os.path.join(spool, name)) as f:
                        for line in f:
                            key = json.loads(line)["key"]
                            seen.setdefault(key, now)
                time.sleep(0.001)
        t = threading.Thread(target=watch, daemon=True)
        t.start()
        started = {}
        for i in range(self.args.puts):
            key = "lat%d" % i
            started[key] = time.monotonic()
            self.ctl("put", "bench/shop/latency", json.dumps(key), json.dumps({"i": i}))
            time.sleep(0.02)
        deadline = time.monotonic() + 30
        while len(seen) < len(started) and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        t.join()
        self.stop()
        lat = sorted(seen[k] - started[k] for k in started if k in seen)
        if len(lat) < len(started):
            sys.exit("latency: %d of %d puts never arrived" % (len(lat), len(started)))
        return lat[len(lat) // 2], lat[min(len(lat) - 1, int(len(lat) * 0.99))]

    def run(self):
        try:
            imp = self.make_backlog()
            n, secs, cpu = self.ship_backlog()
            rate = n / secs
            hdfs_rate = self.ship_to_webhdfs()
            plain = self.plain_loop()
            p50, p99 = self.latency()
        finally:
            if self.proc and self.proc.poll() is None:
                os.killpg(self.proc.pid, signal.SIGKILL)
            if is_mounted(self.mnt):
                subprocess.run(["fusermount3", "-u", "-z", self.mnt])
        sync_rate = plain[1][0] / plain[1][1]
        nosync_rate = plain[0][0] / plain[0][1]
        size = sum(os.path.getsize(os.path.join(self.spool, f)) for f in os.listdir(self.spool))
        rows = [
            ("change log -> dir sink files (defaults, fsync)", "%.0f changes/s" % rate,
             ">= 300,000/s", "ok" if rate >= 300000 else "MISSED"),
            ("... against the plain loop", "%.0f%%" % (100 * rate / sync_rate), ">= 50%",
             "ok" if rate >= sync_rate / 2 else "MISSED"),
            ("daemon CPU time while shipping (all threads)", "%.2f us/change" % (cpu * 1e6 / n),
             "", ""),
            ("change log -> WebHDFS test peer (defaults; Python peer)",
             "%.0f changes/s" % hdfs_rate, "", ""),
            ("plain C loop, same lines, same batches, fsync+rename", "%.0f lines/s" % sync_rate,
             "(this disk's limit)", ""),
            ("plain C loop, no fsync", "%.0f lines/s" % nosync_rate, "", ""),
            ("end-to-end put -> line in a spool file, p50", "%.0f ms" % (p50 * 1000), "", ""),
            ("end-to-end put -> line in a spool file, p99", "%.0f ms" % (p99 * 1000), "<= 1000 ms",
             "ok" if p99 <= 1.0 else "MISSED"),
        ]
        out = ["| measure | result | target | |", "|---|---|---|---|"]
        out += ["| %s | %s | %s | %s |" % r for r in rows]
        out.append("")
        with open("/proc/loadavg") as f:
            load = f.read().split()[0]
        out.append("%d changes of ~%d bytes (%.1f MB of change lines), imported in %.1f s; "
                   "%d puts for the latency; load average %s at the end; daemon: %s." %
                   (n, self.args.size, size / 1e6, imp, self.args.puts, load, self.where))
        text = "\n".join(out)
        print(text)
        if self.args.out:
            with open(self.args.out, "w") as f:
                f.write(text + "\n")
        shutil.rmtree(self.root, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--changes", type=int, default=1000000)
    ap.add_argument("--size", type=int, default=400)
    ap.add_argument("--puts", type=int, default=200)
    release_build.add_arguments(ap)
    ap.add_argument("--out")
    Bench(ap.parse_args()).run()


if __name__ == "__main__":
    main()
