"""The dir sink: file names, content, batching limits, selectors, clean
shutdown, long lines, partitions with done flags, a full disk, replay."""
import json
import os
import re
import subprocess
import time

from conftest import IDBMOUNTCTL, batch_files, fs_conftest, read_lines, wait_for
from flume_spooldir import SpoolConsumer
from peers import WebHdfsPeer
from test_webhdfs import hdfs_files

NAME_RE = re.compile(r"^idbmount-[A-Za-z0-9._]+-[0-9a-f]{16}(\.\d+)?-(\d{20})-(\d{20})\.jsonl$")


def dir_config(path, name="spool", **options):
    lines = ["[sink %s]" % name, "type = dir", "path = %s" % path]
    lines += ["%s = %s" % (k, v) for k, v in options.items()]
    return "\n".join(lines) + "\n"


def records(n, size=50, start=0):
    return [(i, {"n": i, "pad": "x" * size}) for i in range(start, start + n)]


def test_batches_are_the_change_lines_under_unique_names(sinks, tmp_path):
    spool = tmp_path / "spool"
    sinks.start(dir_config(spool, max_records=10, max_age="200ms"))
    sinks.import_lines("alice/shop/orders", records(25))
    sinks.wait_caught_up("spool")
    files = batch_files(spool)
    assert [len(read_lines([f])) for f in files] == [10, 10, 5]
    # Exactly the lines idbmountctl log renders, in order, byte for byte.
    assert read_lines(files) == sinks.log_lines()
    epoch = None
    for f in files:
        m = NAME_RE.match(os.path.basename(f))
        assert m, f
        lines = read_lines([f])
        assert int(m.group(2)) == json.loads(lines[0])["seq"]
        assert int(m.group(3)) == json.loads(lines[-1])["seq"]
        # mtime set at publication, not at some earlier write
        assert abs(os.stat(f).st_mtime - time.time()) < 120
    # No temp files left behind, nothing hidden.
    assert [n for n in os.listdir(spool) if n.startswith(".")] == []
    st = sinks.sink_status("spool")
    assert st["delivered_batches"] == 3 and st["delivered_changes"] == 25
    assert st["delivered_seq"] == 25 and st["lag_changes"] == 0
    assert st["retries"] == 0 and st["failures"] == 0


def test_max_bytes_closes_a_batch(sinks, tmp_path):
    spool = tmp_path / "spool"
    sinks.start(dir_config(spool, max_bytes="1k", max_age="100ms"))
    sinks.import_lines("alice/shop/orders", records(30, size=200))
    sinks.wait_caught_up("spool")
    files = batch_files(spool)
    assert len(files) > 5
    for f in files:
        assert os.path.getsize(f) <= 1024 or len(read_lines([f])) == 1
    assert len(read_lines(files)) == 30


def test_max_age_delivers_a_lone_change(sinks, tmp_path):
    spool = tmp_path / "spool"
    sinks.start(dir_config(spool, max_age="50ms"))
    sinks.put("alice/shop/orders", "k", {"v": 1})
    wait_for("the batch", lambda: batch_files(spool))
    line = json.loads(read_lines(batch_files(spool))[0])
    assert line["key"] == "k" and line["value"] == {"v": 1} and line["op"] == "put"


def test_deletes_have_no_value(sinks, tmp_path):
    spool = tmp_path / "spool"
    sinks.start(dir_config(spool, max_age="50ms"))
    sinks.put("alice/shop/orders", 1, {"v": 1})
    sinks.ctl("rm", "alice/shop/orders", "1")
    sinks.wait_caught_up("spool")
    lines = [json.loads(l) for l in read_lines(batch_files(spool))]
    assert [l["op"] for l in lines] == ["put", "delete"]
    assert "value" not in lines[1]


def test_selectors_pick_clients_databases_stores(sinks, tmp_path):
    sinks.ctl("client", "add", "bob")
    a, b = tmp_path / "a", tmp_path / "b"
    sinks.start(dir_config(a, name="a", select="alice/shop/*", max_age="50ms") +
                dir_config(b, name="b", select="bob, */*/log*", max_age="50ms"))
    sinks.put("alice/shop/orders", 1, {"x": 1})
    sinks.put("alice/blog/posts", 1, {"x": 2})
    sinks.put("alice/app/logs", 1, {"x": 3})
    sinks.put("bob/shop/orders", 1, {"x": 4})
    sinks.wait_caught_up("a")
    sinks.wait_caught_up("b")
    got_a = [json.loads(l)["value"]["x"] for l in read_lines(batch_files(a))]
    got_b = [json.loads(l)["value"]["x"] for l in read_lines(batch_files(b))]
    assert got_a == [1]
    assert got_b == [3, 4]
    # The cursor moved over what was not selected: no lag left.
    assert sinks.sink_status("a")["lag_changes"] == 0


def test_clean_shutdown_delivers_what_is_ready(sinks, tmp_path):
    spool = tmp_path / "spool"
    sinks.start(dir_config(spool, max_age="1h"))
    sinks.import_lines("alice/shop/orders", records(3))
    time.sleep(0.3)
    assert batch_files(spool) == []  # the batch is not old enough
    assert sinks.stop() == 0
    assert len(read_lines(batch_files(spool))) == 3


def test_sigterm_also_delivers(sinks, tmp_path):
    spool = tmp_path / "spool"
    sinks.start(dir_config(spool, max_age="1h"))
    sinks.import_lines("alice/shop/orders", records(4))
    sinks.proc.terminate()
    assert sinks.proc.wait(timeout=60) == 0
    sinks.proc = None
    sinks.log.close()
    assert len(read_lines(batch_files(spool))) == 4


def test_restart_ships_only_new_changes(sinks, tmp_path):
    spool = tmp_path / "spool"
    sinks.start(dir_config(spool, max_age="50ms"))
    sinks.import_lines("alice/shop/orders", records(5))
    sinks.wait_caught_up("spool")
    assert sinks.stop() == 0
    sinks.import_lines("alice/shop/orders", records(5, start=100))  # while stopped
    sinks.start()
    sinks.wait_caught_up("spool")
    seqs = [json.loads(l)["seq"] for l in read_lines(batch_files(spool))]
    assert seqs == list(range(1, 11))


def test_long_lines_are_counted_and_reported(sinks, tmp_path):
    spool = tmp_path / "spool"
    sinks.start(dir_config(spool, max_line=300, max_age="50ms"))
    sinks.import_lines("alice/shop/orders",
                       [(1, {"a": "short"}), (2, {"a": "é" * 400}), (3, {"a": "y" * 100})])
    sinks.wait_caught_up("spool")
    st = sinks.sink_status("spool")
    assert st["long_lines"] == 1
    # Characters, not bytes: 400 two-byte characters make one long line,
    # and it is still delivered whole.
    assert "1 lines longer than max_line (300 characters)" in sinks.stderr()
    assert "deserializer.maxLineLength" in sinks.stderr()
    assert len(read_lines(batch_files(spool))) == 3


def test_partition_and_done_flag(sinks, tmp_path):
    """Also for the webhdfs sink, in the same minute, to wait only once."""
    spool = tmp_path / "spool"
    hdfs = WebHdfsPeer(tmp_path / "hdfs")
    layout = dict(partition="${YEAR}/${MONTH}/${DAY}/${HOUR}/${MINUTE}", done_flag="_SUCCESS")
    sinks.start(dir_config(spool, max_age="50ms", **layout) +
                "[sink hdfs]\ntype = webhdfs\nurl = %s\npath = /feeds/idb\nmax_age = 50ms\n"
                "partition = %s\ndone_flag = %s\n" % (hdfs.url, layout["partition"],
                                                      layout["done_flag"]))
    before = time.gmtime()
    sinks.put("alice/shop/orders", 1, {"x": 1})
    sinks.wait_caught_up("spool")
    files = batch_files(spool, recursive=True)
    assert len(files) == 1
    rel = os.path.relpath(os.path.dirname(files[0]), spool)
    parts = rel.split("/")
    assert len(parts) == 5 and [len(p) for p in parts] == [4, 2, 2, 2, 2]
    after = time.gmtime()
    assert rel in {time.strftime("%Y/%m/%d/%H/%M", before), time.strftime("%Y/%m/%d/%H/%M", after)}
    flag = os.path.join(spool, rel, "_SUCCESS")
    # The period closes at the next minute: then (and only then) the flag.
    if time.strftime("%Y/%m/%d/%H/%M", time.gmtime()) == rel:
        assert not os.path.exists(flag)
    hdfs_dir = tmp_path / "hdfs" / "feeds" / "idb" / rel
    hdfs_flag = hdfs_dir / "_SUCCESS"
    wait_for("the HDFS batch", lambda: len(hdfs_files(hdfs_dir)) == 1)
    if time.strftime("%Y/%m/%d/%H/%M", time.gmtime()) == rel:
        assert not hdfs_flag.exists()
    wait_for("the done flag", lambda: os.path.exists(flag), timeout=90, interval=0.1)
    assert os.path.getsize(flag) == 0
    assert time.strftime("%Y/%m/%d/%H/%M", time.gmtime()) != rel
    wait_for("the HDFS done flag", hdfs_flag.exists, timeout=30)
    assert hdfs_flag.stat().st_size == 0
    flag_creates = [e for e in hdfs.ops("CREATE") if e[2].endswith("/_SUCCESS")]
    assert flag_creates and all(q["overwrite"] == "false" for _, _, _, q in flag_creates)
    assert all(s["last_error"] == "" for s in sinks.status()["sinks"])
    hdfs.close()


def test_full_disk_backs_off_and_the_other_sink_goes_on(sinks, tmp_path):
    small, big = tmp_path / "small", tmp_path / "big"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(small)], check=True)
    try:
        sinks.start(dir_config(small, name="small", max_records=50, max_age="50ms",
                               retry_initial="50ms", retry_max="400ms") +
                    dir_config(big, name="big", max_records=50, max_age="50ms"))
        sinks.import_lines("alice/shop/orders", records(600, size=300))
        # The healthy sink delivers everything while the other is stuck.
        sinks.wait_caught_up("big")
        assert len(read_lines(batch_files(big))) == 600
        st = wait_for("the full sink to retry",
                      lambda: (lambda s: s if s["retries"] >= 2 else None)(sinks.sink_status("small")))
        assert "No space left on device" in st["last_error"]
        assert st["lag_changes"] > 0 and st["failures"] == 0
        assert "retry" in sinks.stderr()
        # A consumer takes the files away: the backlog drains, in order.
        taken = []
        deadline = time.monotonic() + 120
        while sinks.sink_status("small")["lag_changes"] > 0:
            assert time.monotonic() < deadline, "the backlog did not drain"
            for f in batch_files(small):
                taken += read_lines([f])
                os.unlink(f)
            time.sleep(0.05)
        for f in batch_files(small):
            taken += read_lines([f])
        seqs = [json.loads(l)["seq"] for l in taken]
        assert seqs == list(range(1, 601))
        assert [n for n in os.listdir(small) if n.startswith(".")] == []
    finally:
        sinks.stop()
        subprocess.run(["umount", "-l", str(small)], check=False)


def test_replay_ships_history_again_under_new_names(sinks, tmp_path):
    spool = tmp_path / "spool"
    sinks.start(dir_config(spool, max_age="50ms"))
    sinks.import_lines("alice/shop/orders", records(20))
    sinks.wait_caught_up("spool")
    first = batch_files(spool)
    p = sinks.ctl("sink", "replay", "spool", "--from", "6")
    assert "will ship seqs 6 to 20 again" in p.stderr
    assert "replay of sink spool done" in p.stderr
    files = batch_files(spool)
    new = [f for f in files if f not in first]
    assert new and all(NAME_RE.match(os.path.basename(f)).group(1) == ".1" for f in new)
    assert [json.loads(l)["seq"] for l in read_lines(new)] == list(range(6, 21))
    assert len(read_lines(first)) == 20  # the first copies are untouched


def test_replay_draws_a_progress_bar_on_a_terminal(sinks, tmp_path):
    spool = tmp_path / "spool"
    sinks.start(dir_config(spool, max_age="50ms"))
    sinks.import_lines("alice/shop/orders", records(50))
    sinks.wait_caught_up("spool")
    cmd = "%s --data %s sink replay spool --from 1" % (IDBMOUNTCTL, sinks.data)
    # script(1) runs it on a pseudo-terminal.
    p = subprocess.run(["script", "-qec", cmd, "/dev/null"], capture_output=True,
                       text=True, timeout=120)
    assert p.returncode == 0, p.stdout
    assert "replay spool [" in p.stdout and "100% 50/50 changes" in p.stdout
    p = sinks.ctl("sink", "replay", "spool", "--from", "1")
    assert "replay spool [" not in p.stderr  # not a terminal: no bar


def test_replay_and_unpark_errors(sinks, tmp_path):
    sinks.start(dir_config(tmp_path / "spool"))
    p = sinks.ctl("sink", "replay", "nope", "--from", "1", check=False)
    assert p.returncode == 1 and "no sink named 'nope'" in p.stderr
    p = sinks.ctl("sink", "replay", "spool", check=False)
    assert p.returncode == 2 and "needs NAME and --from SEQ" in p.stderr
    p = sinks.ctl("sink", "replay", "spool", "--from", "0", check=False)
    assert p.returncode == 2 and "--from wants a seq" in p.stderr
    p = sinks.ctl("sink", "unpark", "spool", "--id", "7", check=False)
    assert p.returncode == 1 and "has no parked batch 7" in p.stderr
    p = sinks.ctl("sink", "frobnicate", check=False)
    assert p.returncode == 2
    p = sinks.ctl("sink", check=False)
    assert p.returncode == 2 and "which sink command" in p.stderr
    p = sinks.ctl("sink", "list", "extra", check=False)
    assert p.returncode == 2 and "takes no arguments" in p.stderr
    p = sinks.ctl("status", "--yaml", check=False)
    assert p.returncode == 2 and "unexpected argument" in p.stderr
    p = sinks.ctl("sink", "unpark", check=False)
    assert p.returncode == 2 and "needs NAME" in p.stderr
    p = sinks.ctl("sink", "unpark", "nope", check=False)
    assert p.returncode == 1 and "no sink named 'nope'" in p.stderr
    p = subprocess.run([IDBMOUNTCTL, "--data", str(tmp_path / "none"), "status"],
                       capture_output=True, text=True)
    assert p.returncode == 1 and "no idbmount data" in p.stderr


def test_status_text(sinks, tmp_path):
    spool = tmp_path / "spool"
    sinks.start(dir_config(spool, max_age="50ms"))
    sinks.import_lines("alice/shop/orders", records(3))
    sinks.wait_caught_up("spool")
    out = sinks.ctl("status").stdout
    assert "sink spool (dir)" in out
    assert "lag: 0 changes" in out
    assert "delivered: 1 batches, 3 changes" in out
    assert "retries: 0, failures: 0" in out


def test_taken_on_rename_follows_the_consumer(sinks, tmp_path):
    spool = tmp_path / "spool"
    sinks.start(dir_config(spool, max_records=5, max_age="50ms", acknowledge="rename"))
    sinks.import_lines("alice/shop/orders", records(12))
    sinks.wait_caught_up("spool")
    st = sinks.sink_status("spool")
    assert st["delivered_batches"] == 3 and st["delivered_seq"] == 0  # published, not taken
    files = batch_files(spool)
    os.rename(files[0], files[0] + ".COMPLETED")
    wait_for("the first batch taken", lambda: sinks.sink_status("spool")["delivered_seq"] == 5)
    consumer = SpoolConsumer(spool)
    consumer.sweep()
    consumer.sweep()
    assert consumer.failures == []
    wait_for("every batch taken", lambda: sinks.sink_status("spool")["delivered_seq"] == 12)
    # Taken while the daemon was down: found by name at the next start.
    assert sinks.stop() == 0
    sinks.import_lines("alice/shop/orders", records(3, start=50))
    sinks.start()
    sinks.wait_caught_up("spool")
    consumer.sweep()
    consumer.sweep()
    assert sinks.stop() == 0
    sinks.start()
    wait_for("the taken seq after a restart",
             lambda: sinks.sink_status("spool")["delivered_seq"] == 15)
    st = sinks.status()
    assert st["delivered_lowest"] == st["delivered_highest"] == 15


def test_taken_on_delete_for_nifi_getfile(sinks, tmp_path):
    spool = tmp_path / "spool"
    sinks.start(dir_config(spool, max_records=4, max_age="50ms", acknowledge="delete",
                           partition="${YEAR}/${MONTH}"))
    sinks.import_lines("alice/shop/orders", records(8))
    sinks.wait_caught_up("spool")
    files = batch_files(spool, recursive=True)
    assert len(files) == 2 and sinks.sink_status("spool")["delivered_seq"] == 0
    os.rename(files[1], str(tmp_path / "elsewhere"))  # a rename is not a delete
    os.unlink(files[0])
    wait_for("the deleted batch taken", lambda: sinks.sink_status("spool")["delivered_seq"] == 4)


def test_a_batch_whose_directory_sync_failed_is_published_once(sinks, tmp_path, monkeypatch):
    """The rename that publishes a batch went through, then syncing its
    directory failed, and the retry wrote and published the batch again:
    by then Flume had taken the file (renamed it to .COMPLETED), and a
    name used twice stops Flume. The retry now only syncs again.
    tests/common/faulty_disk.c makes the first sync of the spool
    directory fail."""
    spool = tmp_path / "spool"
    spool.mkdir()
    fs_conftest.preload_faulty_disk(tmp_path, monkeypatch, FAIL_DIR_SYNC=spool)
    sinks.start(dir_config(spool, max_records=1, max_age="20ms", acknowledge="rename",
                           retry_initial="2s"))
    sinks.put("alice/shop/orders", 1, {"n": 1})
    # As Flume: take the batch as soon as it shows, before the retry.
    name = wait_for("the batch", lambda: batch_files(spool) and
                    os.path.basename(batch_files(spool)[0]))
    os.rename(spool / name, spool / (name + ".COMPLETED"))
    sinks.wait_caught_up("spool")
    assert "faulty_disk: a sync of %s failed" % spool in sinks.stderr()
    assert sorted(os.listdir(spool)) == [name + ".COMPLETED"]
    assert read_lines([spool / (name + ".COMPLETED")]) == sinks.log_lines()
    # The take, seen while the retry waited, counts once the batch is in.
    last = sinks.status()["last_seq"]
    wait_for("the take to count", lambda: sinks.sink_status("spool")["delivered_seq"] >= last)
