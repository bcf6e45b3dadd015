"""The webhdfs sink against a strict WebHDFS peer (NameNode + DataNode,
or HttpFS): CREATE under a temp name following the 307, RENAME with false
as a failure, GETFILESTATUS to finish a batch after a crash."""
import gzip
import json
import os
import re
import signal
import threading
import time

import pytest

from conftest import read_lines, wait_for
from peers import HdfsConsumer, WebHdfsPeer


def hdfs_config(url, name="hdfs", **options):
    lines = ["[sink %s]" % name, "type = webhdfs", "url = %s" % url,
             "path = /data/idb", "user = etl"]
    lines += ["%s = %s" % (k, v) for k, v in options.items()]
    return "\n".join(lines) + "\n"


def records(n, start=0):
    return [(i, {"n": i}) for i in range(start, start + n)]


def hdfs_files(root):
    """Visible files under the peer's root, sorted by name."""
    out = []
    for dirpath, _, names in os.walk(root):
        out += [os.path.join(dirpath, n) for n in names if not n.startswith((".", "_"))]
    return sorted(out, key=os.path.basename)


def hidden_files(root):
    return [n for _, _, names in os.walk(root) for n in names if n.startswith(".")]


def test_create_follows_the_redirect_then_renames(sinks, tmp_path):
    root = tmp_path / "hdfs"
    with WebHdfsPeer(root) as hdfs:
        sinks.start(hdfs_config(hdfs.url, max_records=10, max_age="50ms",
                                partition="${YEAR}/${MONTH}/${DAY}"))
        sinks.import_lines("alice/shop/orders", records(25))
        sinks.wait_caught_up("hdfs")
        files = hdfs_files(root)
        assert len(files) == 3
        assert read_lines(files) == sinks.log_lines()
        rel = os.path.relpath(os.path.dirname(files[0]), root)
        assert rel == "data/idb/" + time.strftime("%Y/%m/%d", time.gmtime()) or rel.startswith("data/idb/")
        assert hidden_files(root) == []
        creates = [e for e in hdfs.log if e[1] == "CREATE"]
        # NameNode then DataNode for each batch, always a new hidden name
        # of its own in the hidden staging directory, never overwriting.
        assert len(creates) == 6
        for method, op, path, q in creates:
            assert re.fullmatch(r"/data/idb/\.idbmount-staging/hdfs/\.idbmount-.*\.jsonl\.tmp"
                                r"\.[0-9a-f]{8}", path), path
            assert q["overwrite"] == "false" and q["user.name"] == "etl"
        assert len({path for _, _, path, _ in creates}) == 3
        # Each confirmed write becomes the staged copy, which is published.
        renames = hdfs.ops("RENAME")
        assert len(renames) == 6
        staged = [q["destination"] for _, _, _, q in renames[0::2]]
        assert all(d.startswith("/data/idb/.idbmount-staging/hdfs/.") and d.endswith(".jsonl.tmp")
                   for d in staged)
        published = hdfs.publishes()
        assert [path for _, _, path, _ in published] == staged
        assert all(q["destination"].startswith("/data/idb/2") for _, _, _, q in published)
        assert hdfs.ops("MKDIRS")


def test_httpfs_sends_the_data_at_once(sinks, tmp_path):
    root = tmp_path / "hdfs"
    with WebHdfsPeer(root, httpfs=True) as hdfs:
        sinks.start(hdfs_config(hdfs.url, httpfs="true", max_age="50ms"))
        sinks.import_lines("alice/shop/orders", records(5))
        sinks.wait_caught_up("hdfs")
        assert read_lines(hdfs_files(root)) == sinks.log_lines()
        creates = hdfs.ops("CREATE")
        assert len(creates) == 1 and creates[0][3]["data"] == "true"


def test_noredirect_takes_the_location_from_json(sinks, tmp_path):
    root = tmp_path / "hdfs"
    with WebHdfsPeer(root) as hdfs:
        sinks.start(hdfs_config(hdfs.url, noredirect="true", max_age="50ms"))
        sinks.import_lines("alice/shop/orders", records(5))
        sinks.wait_caught_up("hdfs")
        assert read_lines(hdfs_files(root)) == sinks.log_lines()
        assert hdfs.ops("CREATE")[0][3]["noredirect"] == "true"


def test_rename_false_is_a_failure_not_a_delivery(sinks, tmp_path):
    root = tmp_path / "hdfs"
    with WebHdfsPeer(root) as hdfs:
        gate = threading.Event()
        hdfs.hang["PUBLISH"] = gate
        sinks.start(hdfs_config(hdfs.url, max_age="50ms", retry_initial="50ms",
                                retry_max="200ms"))
        sinks.import_lines("alice/shop/orders", records(3))
        wait_for("the RENAME", hdfs.publishes)
        final = hdfs.publishes()[0][3]["destination"]
        squatter = root / final.lstrip("/")
        squatter.write_text("someone else's file\n")
        del hdfs.hang["PUBLISH"]
        gate.set()
        st = wait_for("retries", lambda: (lambda s: s if s["retries"] >= 2 else None)(
            sinks.sink_status("hdfs")))
        assert '{"boolean":false}' in st["last_error"] and "the target exists" in st["last_error"]
        assert st["delivered_batches"] == 0
        squatter.unlink()
        sinks.wait_caught_up("hdfs")
        assert read_lines(hdfs_files(root)) == sinks.log_lines()


def test_errors_are_retried_with_the_remote_exception(sinks, tmp_path):
    root = tmp_path / "hdfs"
    with WebHdfsPeer(root) as hdfs:
        hdfs.fail_next("CREATE", 403, 2)
        hdfs.fail_next("RENAME", "drop", 1)
        sinks.start(hdfs_config(hdfs.url, max_age="50ms", retry_initial="20ms",
                                retry_max="100ms"))
        sinks.import_lines("alice/shop/orders", records(4))
        sinks.wait_caught_up("hdfs")
        assert read_lines(hdfs_files(root)) == sinks.log_lines()
        assert "HTTP 403 IOException: scripted failure" in sinks.stderr()
        assert sinks.sink_status("hdfs")["retries"] >= 2


def crash_during_rename(sinks, root, hdfs, rename_happens):
    gate = threading.Event()
    hdfs.hang["PUBLISH"] = gate
    if not rename_happens:
        hdfs.fail_next("PUBLISH", "drop", 1)
    sinks.start(hdfs_config(hdfs.url, max_age="50ms"))
    sinks.import_lines("alice/shop/orders", records(6))
    wait_for("the RENAME", hdfs.publishes)
    sinks.kill()  # staged and renaming: the answer never arrives
    del hdfs.hang["PUBLISH"]
    gate.set()
    creates = len(hdfs.ops("CREATE"))
    wait_for("the peer to finish", lambda: rename_happens == bool(hdfs_files(root)))
    sinks.start()
    sinks.wait_caught_up("hdfs")
    assert read_lines(hdfs_files(root)) == sinks.log_lines()
    assert hidden_files(root) == []
    assert len(hdfs.ops("CREATE")) == creates  # nothing written twice
    assert hdfs.ops("GETFILESTATUS")


def test_crash_after_the_rename_took_place(sinks, tmp_path):
    root = tmp_path / "hdfs"
    with WebHdfsPeer(root) as hdfs:
        crash_during_rename(sinks, root, hdfs, rename_happens=True)
        assert len(hdfs.publishes()) == 1
        assert "was delivered before the restart" in sinks.stderr()


def test_crash_before_the_rename_took_place(sinks, tmp_path):
    root = tmp_path / "hdfs"
    with WebHdfsPeer(root) as hdfs:
        crash_during_rename(sinks, root, hdfs, rename_happens=False)
        assert len(hdfs.publishes()) == 2
        assert "delivering the staged copy after a restart" in sinks.stderr()


def test_gzip_files(sinks, tmp_path):
    root = tmp_path / "hdfs"
    with WebHdfsPeer(root) as hdfs:
        sinks.start(hdfs_config(hdfs.url, compression="gzip", max_records=10, max_age="50ms"))
        sinks.import_lines("alice/shop/orders", records(25))
        sinks.wait_caught_up("hdfs")
        files = hdfs_files(root)
        assert len(files) == 3 and all(f.endswith(".jsonl.gz") for f in files)
        text = b"".join(gzip.decompress(open(f, "rb").read()) for f in files)
        assert text.decode().splitlines() == sinks.log_lines()
        assert hidden_files(root) == []


# ---- consumers that take published files away ----------------------------

def moving_config(url, **options):
    """Short timeouts: the peer's late answers come after them."""
    base = dict(max_age="50ms", timeout="1s", retry_initial="50ms", retry_max="200ms")
    base.update(options)
    return hdfs_config(url, **base)


@pytest.mark.parametrize("mode", ["move", "delete"])
def test_a_late_rename_answer_after_the_consumer_took_the_file_is_a_delivery(
        sinks, tmp_path, mode):
    """The RENAME is done but answered after the sink's timeout; by then the
    consumer took the file away. The retried RENAME answers false and
    neither name exists: the staged copy is gone, which only the delivery
    does, so the batch counts as delivered and is not published again."""
    root = tmp_path / "hdfs"
    with WebHdfsPeer(root) as hdfs:
        consumer = HdfsConsumer(hdfs, "/data/idb", mode=mode, delay=0.15)
        hdfs.late_s = 1.5
        hdfs.script("PUBLISH", ["late"])
        sinks.start(moving_config(hdfs.url))
        sinks.import_lines("alice/shop/orders", records(6))
        sinks.wait_caught_up("hdfs")
        assert consumer.wait_idle()
        assert consumer.failures == [] and consumer.republished == []
        assert consumer.lines() == sinks.log_lines()
        st = sinks.sink_status("hdfs")
        assert st["delivered_batches"] == 1 and st["retries"] >= 1
        assert len(hdfs.publishes()) == 2  # the late one, and the retry that found it done
        assert "Timeout was reached" in sinks.stderr() or "timed out" in sinks.stderr()


def test_a_kill_right_after_the_rename_with_a_consumer_that_took_the_file(sinks, tmp_path):
    """SIGKILL right after the RENAME, before its answer; the consumer then
    moves the file away. At the next start the staged intent finds neither
    name: delivered, not written again."""
    root = tmp_path / "hdfs"
    with WebHdfsPeer(root) as hdfs:
        consumer = HdfsConsumer(hdfs, "/data/idb", delay=0.15)
        killed = threading.Event()

        def kill(dest):
            if not killed.is_set():
                os.kill(sinks.proc.pid, signal.SIGKILL)
                killed.set()
        hdfs.on_publish.insert(0, kill)
        sinks.start(moving_config(hdfs.url))
        sinks.import_lines("alice/shop/orders", records(6))
        wait_for("the kill after the RENAME", killed.is_set)
        sinks.kill()
        hdfs.on_publish.remove(kill)
        assert consumer.wait_idle()
        assert consumer.lines() == sinks.log_lines()  # taken while the daemon was down
        creates = len(hdfs.ops("CREATE"))
        sinks.start()
        sinks.wait_caught_up("hdfs")
        assert consumer.wait_idle()
        assert consumer.failures == [] and consumer.republished == []
        assert consumer.lines() == sinks.log_lines()
        assert len(hdfs.ops("CREATE")) == creates  # nothing written again
        assert "was delivered before the restart" in sinks.stderr()


def test_a_datanode_write_that_completes_late_is_never_published_and_is_swept(sinks, tmp_path):
    """The DataNode takes the data but creates the file only after the
    sink's timeout, when the retry has staged and published the batch. That
    copy is not the staged one (an unconfirmed CREATE never is): it is not
    published, and the next start removes it."""
    root = tmp_path / "hdfs"
    with WebHdfsPeer(root) as hdfs:
        consumer = HdfsConsumer(hdfs, "/data/idb", delay=0.15)
        hdfs.late_s = 1.5
        hdfs.script("DATANODE", ["slow"])
        sinks.start(moving_config(hdfs.url))
        sinks.import_lines("alice/shop/orders", records(4))
        sinks.wait_caught_up("hdfs")
        wait_for("the late write", lambda: hidden_files(root))
        assert consumer.wait_idle()
        assert consumer.lines() == sinks.log_lines() and consumer.republished == []
        assert sinks.stop() == 0
        sinks.start()
        wait_for("the sweep at start", lambda: hidden_files(root) == [])
        assert [e for e in hdfs.ops("DELETE")]
        assert consumer.lines() == sinks.log_lines()


# ---- answers that can never succeed ---------------------------------------

def test_a_name_hdfs_refuses_parks_the_batch(sinks, tmp_path):
    """HDFS answers 400 InvalidPathException for a name it will never take:
    the batch is parked (status, /metrics), not retried for ever, and the
    batches after it go on; unparked, it goes."""
    from test_removed import http_port, metrics, sample  # it imports this module
    root = tmp_path / "hdfs"
    with WebHdfsPeer(root) as hdfs:
        sinks.start(moving_config(hdfs.url, partition="y${YEAR}"))
        port = http_port(sinks)
        year_dir = "/data/idb/y%d" % time.gmtime().tm_year
        hdfs.script_path("MKDIRS", year_dir,
                         [(400, "InvalidPathException", "Invalid path name " + year_dir)])
        sinks.import_lines("alice/shop/orders", records(3))
        st = wait_for("the batch to be parked",
                      lambda: (lambda s: s if s["parked"] == 1 else None)(sinks.sink_status("hdfs")))
        assert st["failures"] == 1 and st["retries"] == 0
        assert "HTTP 400 InvalidPathException: Invalid path name " + year_dir in \
            st["parked_batches"][0]["error"]
        assert "parked" in sinks.stderr()
        text = metrics(port)
        assert sample(text, "idbmount_sink_parked_batches", "hdfs") == 1
        assert sample(text, "idbmount_sink_failures_total", "hdfs") == 1
        sinks.import_lines("alice/shop/orders", records(2, start=3))
        sinks.wait_caught_up("hdfs")
        assert len(read_lines(hdfs_files(root))) == 2
        sinks.ctl("sink", "unpark", "hdfs")
        wait_for("the unparked batch", lambda: sinks.sink_status("hdfs")["parked"] == 0
                 and len(hdfs_files(root)) == 2)
        got = sorted(read_lines(hdfs_files(root)), key=lambda l: json.loads(l)["seq"])
        assert got == sinks.log_lines()


# ---- the staging directory -------------------------------------------------

STAGING = "data/idb/.idbmount-staging/hdfs"


def test_a_crash_before_staging_was_recorded_writes_the_batch_again(sinks, tmp_path):
    """Killed while the confirmed write is being renamed to the staged
    name: the intent is not marked staged, so the batch is written again,
    the staged copy left by the rename giving way; published once."""
    root = tmp_path / "hdfs"
    with WebHdfsPeer(root) as hdfs:
        gate = threading.Event()
        hdfs.hang["RENAME"] = gate
        sinks.start(hdfs_config(hdfs.url, max_age="50ms"))
        sinks.import_lines("alice/shop/orders", records(5))
        wait_for("the RENAME to the staged name", lambda: hdfs.ops("RENAME"))
        sinks.kill()
        del hdfs.hang["RENAME"]
        gate.set()
        wait_for("the staged copy", lambda: [n for n in os.listdir(root / STAGING)
                                              if n.endswith(".jsonl.tmp")])
        sinks.start()
        sinks.wait_caught_up("hdfs")
        assert read_lines(hdfs_files(root)) == sinks.log_lines()
        assert len(hdfs.publishes()) == 1
        assert [p for _, _, p, _ in hdfs.ops("DELETE") if p.endswith(".jsonl.tmp")]
        assert hidden_files(root) == []
        assert "writing it again after a restart" in sinks.stderr()


def test_a_batch_staged_by_an_older_version_is_published_from_there(sinks, tmp_path):
    """Versions before the staging directory staged .NAME.tmp next to the
    final name: a batch staged there when the daemon was upgraded is
    published from there, once."""
    root = tmp_path / "hdfs"
    with WebHdfsPeer(root) as hdfs:
        gate = threading.Event()
        hdfs.hang["PUBLISH"] = gate
        hdfs.fail_next("PUBLISH", "drop", 1)
        sinks.start(hdfs_config(hdfs.url, max_age="50ms"))
        sinks.import_lines("alice/shop/orders", records(5))
        wait_for("the RENAME", hdfs.publishes)
        sinks.kill()
        del hdfs.hang["PUBLISH"]
        gate.set()
        (staged,) = [n for n in os.listdir(root / STAGING) if n.endswith(".jsonl.tmp")]
        # What the older version left: the staged copy beside the final name.
        os.rename(root / STAGING / staged, root / "data" / "idb" / staged)
        sinks.start()
        sinks.wait_caught_up("hdfs")
        assert read_lines(hdfs_files(root)) == sinks.log_lines()
        assert hidden_files(root) == []
        assert "delivering the staged copy after a restart" in sinks.stderr()


def test_the_sweep_removes_only_this_data_directory_s_leftovers(sinks, tmp_path):
    root = tmp_path / "hdfs"
    with WebHdfsPeer(root) as hdfs:
        sinks.start(hdfs_config(hdfs.url, max_age="50ms"))
        sinks.import_lines("alice/shop/orders", records(2))
        sinks.wait_caught_up("hdfs")
        assert sinks.stop() == 0
        name = os.path.basename(hdfs_files(root)[0])
        owner = name[:name.index("-0000")]  # PREFIX-NODE-EPOCH
        prefix, node, epoch = owner.split("-")
        seqs = "-%020d-%020d.jsonl" % (90, 99)
        ours = [".%s%s.tmp.0badc0de" % (owner, seqs),          # a late write
                ".%s.3%s.gz.tmp.12345678" % (owner, seqs),     # of a replay, compressed
                ".%s%s.tmp" % (owner, seqs)]                   # staged, no intent needs it
        theirs = [".%s-othernode-%s%s.tmp.0badc0de" % (prefix, epoch, seqs),
                  ".%s-%s-%s%s.tmp.0badc0de" % (prefix, node, "f" * 16, seqs),
                  ".%s-%s%s.tmp" % (prefix, node, seqs),
                  ".%s%s.tmp.notatoken" % (owner, seqs),
                  "notes.txt"]
        for n in ours + theirs:
            (root / STAGING / n).write_text("x\n")
        sinks.start()
        wait_for("the sweep", lambda: sorted(os.listdir(root / STAGING)) == sorted(theirs))
        wait_for("the sweep's report", lambda: "removed 3 copies" in sinks.stderr())


def test_two_sinks_into_one_path_keep_each_other_s_staged_copies(sinks, tmp_path):
    """Two sinks with different selections into one path (the same names'
    start): killed while both have a batch staged, each one's sweep at the
    next start leaves the other's staged copy alone."""
    root = tmp_path / "hdfs"
    with WebHdfsPeer(root) as hdfs:
        gate = threading.Event()
        hdfs.hang["PUBLISH"] = gate
        hdfs.fail_next("PUBLISH", "drop", 2)
        sinks.start(hdfs_config(hdfs.url, name="orders", select="alice/shop/orders",
                                max_age="50ms") +
                    hdfs_config(hdfs.url, name="items", select="alice/shop/items",
                                max_age="50ms"))
        sinks.import_lines("alice/shop/orders", records(3))
        sinks.import_lines("alice/shop/items", records(4))
        wait_for("both RENAMEs", lambda: len(hdfs.publishes()) == 2)
        sinks.kill()
        del hdfs.hang["PUBLISH"]
        gate.set()
        for sink in ("orders", "items"):
            assert [n for n in os.listdir(root / "data/idb/.idbmount-staging" / sink)
                    if n.endswith(".jsonl.tmp")]
        sinks.start()
        sinks.wait_caught_up("orders")
        sinks.wait_caught_up("items")
        got = sorted(read_lines(hdfs_files(root)), key=lambda l: json.loads(l)["seq"])
        assert got == sinks.log_lines()
        assert hidden_files(root) == []
