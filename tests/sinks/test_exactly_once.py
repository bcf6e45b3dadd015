"""Exactly once, proven: the daemon is SIGKILLed at 50+ random moments while
changes are written (idbmountctl import, put and rm, from another process)
and the dir sink delivers them, and a consumer applying Flume spooldir's
rules takes the files (renaming them to .COMPLETED) all along. In the end
the consumer holds every change exactly once, in sequence order, byte for
byte the line `idbmountctl log` renders, and saw no rule broken.

The same for the webhdfs sink with a consumer that moves every published
file away (Spark's cleanSource=archive), a WebHDFS peer that answers some
RENAMEs after the sink's timeout and completes some DataNode writes after
it, and SIGKILLs right after a RENAME published a batch."""
import collections
import json
import os
import random
import signal
import subprocess
import threading
import time

from conftest import IDBMOUNTCTL, batch_files, read_lines, wait_for
from flume_spooldir import SpoolConsumer
from peers import HdfsConsumer, WebHdfsPeer
from test_webhdfs import hdfs_files, hidden_files

# IDBMOUNT_STRESS scales every stress test's size (tests/run-all.sh runs the
# sanitizer pass at a quarter: the same paths, fewer kills and changes).
STRESS = float(os.environ.get("IDBMOUNT_STRESS", "1"))
KILLS = max(10, round(55 * STRESS))


class Writer:
    """Writes changes in another process until stopped."""

    def __init__(self, data, seed, store):
        self.data = data
        self.store = "alice/shop/" + store
        self.rng = random.Random(seed)
        self.stop = threading.Event()
        self.errors = []
        self.thread = threading.Thread(target=self.run, daemon=True)

    def ctl(self, *args, input=None):
        p = subprocess.run([IDBMOUNTCTL, "--data", self.data, *args], input=input,
                           capture_output=True, text=True, timeout=120)
        if p.returncode != 0:
            self.errors.append(p.stderr)

    def run(self):
        i = 0
        live = set()
        while not self.stop.is_set():
            kind = self.rng.random()
            if kind < 0.6:
                n = self.rng.randint(1, 40)
                text = "".join(json.dumps({"key": (i + k) % 500, "value": {"i": i + k, "s": "é✓"}}) + "\n"
                               for k in range(n))
                self.ctl("import", self.store, "-", input=text)
                live.update((i + k) % 500 for k in range(n))
                i += n
            elif kind < 0.9:
                self.ctl("put", "alice/shop/items", json.dumps("k%d" % (i % 50)), json.dumps({"i": i}))
                i += 1
            elif live:
                key = self.rng.choice(sorted(live))
                live.discard(key)
                self.ctl("rm", self.store, str(key))
            time.sleep(self.rng.random() * 0.01)


def test_sigkill_at_random_moments_loses_and_repeats_nothing(sinks, tmp_path):
    spool = tmp_path / "spool"
    hdfs = WebHdfsPeer(tmp_path / "hdfs")
    config = ("[sink spool]\ntype = dir\npath = %s\nmax_records = 5\nmax_age = 20ms\n"
              "retry_initial = 10ms\nretry_max = 100ms\n"
              "[sink hdfs]\ntype = webhdfs\nurl = %s\npath = /idb\nmax_records = 13\n"
              "max_age = 30ms\nretry_initial = 10ms\nretry_max = 100ms\n" % (spool, hdfs.url))
    sinks.write_config(config)
    spool.mkdir()
    consumer = SpoolConsumer(spool).start()
    sinks.ctl("mkstore", "alice/shop/orders")
    sinks.ctl("mkstore", "alice/shop/lines")
    # Two writers on different stores keep the flusher busy, so that kills
    # land inside deliveries, not only between them.
    writers = [Writer(sinks.data, seed=1234, store=s) for s in ("orders", "lines")]
    for w in writers:
        w.thread.start()
    rng = random.Random(99)
    try:
        for _ in range(KILLS):
            sinks.start()
            time.sleep(rng.uniform(0.01, 0.25))
            sinks.kill()
    finally:
        for w in writers:
            w.stop.set()
            w.thread.join(timeout=120)
    assert [e for w in writers for e in w.errors] == []
    # A last clean run delivers the rest.
    sinks.start()
    sinks.wait_caught_up("spool", timeout=120)
    sinks.wait_caught_up("hdfs", timeout=120)
    assert sinks.stop() == 0
    hdfs.close()
    consumer.stop()
    assert consumer.failures == []
    expected = sinks.log_lines()
    # consumer.stop() swept the directory: every batch was taken.
    assert [f for f in batch_files(spool) if not f.endswith(".COMPLETED")] == []
    # The batches in name order (a listing may show a newer file first, so
    # the consumer's own order proves nothing), published in that order.
    names = sorted(consumer.consumed)
    got = [line for name in names for line in consumer.consumed[name]]
    assert sorted(got, key=lambda l: json.loads(l)["seq"]) == sorted(consumer.lines, key=lambda l: json.loads(l)["seq"])
    mtimes = [os.stat(os.path.join(spool, n + ".COMPLETED")).st_mtime_ns for n in names]
    assert mtimes == sorted(mtimes), "a batch was published after a later one"
    seqs = [json.loads(l)["seq"] for l in got]
    assert len(seqs) == len(set(seqs)), "a change was delivered twice"
    assert seqs == sorted(seqs), "out of sequence order"
    assert len(got) == len(expected), "changes lost: %d of %d" % (len(got), len(expected))
    assert got == expected
    assert len(expected) > 500 * STRESS  # the kills really happened while writing
    # No temp file survives a recovered crash.
    assert [n for n in os.listdir(spool) if n.startswith(".")] == []
    st = sinks.sink_status("spool")
    assert st["lag_changes"] == 0 and st["failures"] == 0
    # The same for the webhdfs sink: every change once, in order.
    assert read_lines(hdfs_files(tmp_path / "hdfs")) == expected
    assert hidden_files(tmp_path / "hdfs") == []
    # The crashes were real: some intents were found unfinished.
    log = sinks.stderr()
    assert "after a restart" in log or "was delivered before the restart" in log


def every(n, action, times):
    """A script of `times` requests: every n-th gets `action`."""
    return ([None] * (n - 1) + [action]) * (times // n)


def test_webhdfs_exactly_once_with_a_consumer_that_moves_published_files(sinks, tmp_path):
    """20,000 changes imported while the daemon runs (scaled by
    IDBMOUNT_STRESS); every change is counted by seq over all that the
    consumer took."""
    changes, chunk = max(2000, round(20000 * STRESS)), 250
    # The n-th published batch, with about changes / 50 batches in all.
    kills_after = {max(1, round(n * changes / 20000)) for n in (40, 110, 190, 260)}
    root = tmp_path / "hdfs"
    hdfs = WebHdfsPeer(root)
    hdfs.late_s = 1.5  # the sink's timeout is 1 s
    consumer = HdfsConsumer(hdfs, "/idb", mode="move", delay=0.15)
    hdfs.script("PUBLISH", every(12, "late", 2000))   # published, answered late
    hdfs.script("RENAME", every(25, "late", 2000))    # staged, answered late
    hdfs.script("DATANODE", every(25, "slow", 2000))  # written after the timeout
    lock = threading.Lock()
    published = [0]
    killed = threading.Event()

    def kill_after_publish(dest):
        with lock:
            published[0] += 1
            if published[0] in kills_after:
                os.kill(sinks.proc.pid, signal.SIGKILL)  # before the RENAME is answered
                killed.set()
    hdfs.on_publish.insert(0, kill_after_publish)
    sinks.start("[sink hdfs]\ntype = webhdfs\nurl = %s\npath = /idb\nmax_records = 50\n"
                "max_age = 30ms\ntimeout = 1s\nretry_initial = 20ms\nretry_max = 200ms\n"
                % hdfs.url)
    sinks.ctl("mkstore", "alice/shop/orders")
    errors = []

    def write():
        for start in range(0, changes, chunk):
            text = "".join(json.dumps({"key": k, "value": {"k": k, "s": "é✓"}}) + "\n"
                           for k in range(start, start + chunk))
            p = subprocess.run([IDBMOUNTCTL, "--data", sinks.data, "import",
                                "alice/shop/orders", "-"], input=text, capture_output=True,
                               text=True, timeout=120)
            if p.returncode != 0:
                errors.append(p.stderr)
            time.sleep(0.05)
    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        for _ in kills_after:
            assert killed.wait(timeout=600), "fewer batches were published than expected"
            killed.clear()
            sinks.kill()
            sinks.start()
    finally:
        writer.join(timeout=600)
    assert errors == []
    sinks.wait_caught_up("hdfs", timeout=600)
    assert consumer.wait_idle()
    expected = sinks.log_lines()
    assert len(expected) == changes
    got = consumer.lines()
    count = collections.Counter(json.loads(line)["seq"] for line in got)
    twice = sorted(seq for seq, n in count.items() if n > 1)
    assert twice == [], "%d changes arrived more than once" % len(twice)
    assert consumer.republished == [], "final names published again"
    assert consumer.failures == []
    assert sorted(got, key=lambda line: json.loads(line)["seq"]) == expected
    log = sinks.stderr()
    assert "was delivered before the restart" in log
    assert sinks.sink_status("hdfs")["failures"] == 0
    # Writes that completed after the timeout are litter in the staging
    # directory, never published: the next start removes them.
    assert sinks.stop() == 0
    time.sleep(hdfs.late_s + 0.5)  # the last slow writes land
    assert [n for _, _, names in os.walk(root) for n in names if n.startswith(".")]
    sinks.start()
    wait_for("the sweep", lambda: [n for _, _, names in os.walk(root)
                                   for n in names if n.startswith(".")] == [])
    assert sinks.stop() == 0
    hdfs.close()
    late = {op: sum(1 for a in every(n, act, 2000)[:used] if a == act)
            for op, n, act, used in [
                ("PUBLISH", 12, "late", 2000 - len(hdfs.scripted["PUBLISH"])),
                ("RENAME", 25, "late", 2000 - len(hdfs.scripted["RENAME"])),
                ("DATANODE", 25, "slow", 2000 - len(hdfs.scripted["DATANODE"]))]}
    print("%d changes in %d files taken; %d publishing RENAMEs (%d answered late), %d staging "
          "RENAMEs answered late, %d DataNode writes completed late, %d kills" % (
              len(expected), len(consumer.taken), len(hdfs.publishes()), late["PUBLISH"],
              late["RENAME"], late["DATANODE"], len(kills_after)))
