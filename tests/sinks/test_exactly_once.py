"""Exactly once, proven: the daemon is SIGKILLed at 50+ random moments while
changes are written (idbmountctl import, put and rm, from another process)
and the dir sink delivers them, and a consumer applying Flume spooldir's
rules takes the files (renaming them to .COMPLETED) all along. In the end
the consumer holds every change exactly once, in sequence order, byte for
byte the line `idbmountctl log` renders, and saw no rule broken."""
import json
import os
import random
import subprocess
import threading
import time

from conftest import IDBMOUNTCTL, batch_files, read_lines, wait_for
from flume_spooldir import SpoolConsumer
from peers import WebHdfsPeer
from test_webhdfs import hdfs_files, hidden_files

KILLS = 55


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
    assert len(expected) > 500  # the kills really happened while writing
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
