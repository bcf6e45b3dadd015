"""Done flags for every period (Falcon feeds and Oozie datasets wait on the
flag of each instance, with or without data), and what happens to a batch
that is unparked after its period was flagged (late data).

The partitions here are per second (${SECOND}), so periods close quickly;
every wait has a generous deadline and no assertion depends on timing."""
import calendar
import os
import time

from conftest import batch_files, wait_for
from peers import WebHdfsPeer
from test_dir import dir_config

LAYOUT = "${YEAR}/${MONTH}/${DAY}/${HOUR}/${MINUTE}/${SECOND}"
DEPTH = 6


def partitions(root):
    """{relative partition dir: set of file names} for every leaf partition."""
    out = {}
    for dirpath, dirnames, names in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel != "." and len(rel.split("/")) == DEPTH:
            out[rel] = set(names)
    return out


def seconds_of(rel):
    return calendar.timegm(time.strptime(rel, "%Y/%m/%d/%H/%M/%S"))


def flagged(root, flag="_SUCCESS"):
    return sorted(seconds_of(rel) for rel, names in partitions(root).items() if flag in names)


def assert_no_gaps(seconds):
    assert seconds, "no period was flagged"
    assert seconds == list(range(seconds[0], seconds[-1] + 1)), \
        "periods without a flag between %d and %d: %s" % (
            seconds[0], seconds[-1],
            sorted(set(range(seconds[0], seconds[-1] + 1)) - set(seconds)))


def test_every_period_gets_its_flag_batches_or_not(sinks, tmp_path):
    spool = tmp_path / "spool"
    sparse = tmp_path / "sparse"
    hdfs = WebHdfsPeer(tmp_path / "hdfs")
    started = int(time.time())
    sinks.start(dir_config(spool, max_age="20ms", partition=LAYOUT, done_flag="_SUCCESS") +
                dir_config(sparse, name="sparse", max_age="20ms", partition=LAYOUT,
                           done_flag="_SUCCESS", flag_empty_periods="false") +
                "[sink hdfs]\ntype = webhdfs\nurl = %s\npath = /feeds\nmax_age = 20ms\n"
                "partition = %s\ndone_flag = _SUCCESS\n" % (hdfs.url, LAYOUT))
    sinks.put("alice/shop/orders", 1, {"x": 1})
    sinks.wait_caught_up("spool")
    sinks.wait_caught_up("sparse")
    [batch] = batch_files(spool, recursive=True)
    batch_second = seconds_of(os.path.relpath(os.path.dirname(batch), spool))
    # Three empty periods after the batch's are flagged too, in both sinks.
    wait_for("flags after the batch", lambda: flagged(spool) and
             flagged(spool)[-1] >= batch_second + 3, timeout=60, interval=0.1)
    wait_for("HDFS flags after the batch", lambda: flagged(tmp_path / "hdfs" / "feeds") and
             flagged(tmp_path / "hdfs" / "feeds")[-1] >= batch_second + 3, timeout=60,
             interval=0.1)
    # The other sink closed its batch on its own: maybe in the next second.
    [sparse_batch] = batch_files(sparse, recursive=True)
    sparse_flag = os.path.join(os.path.dirname(sparse_batch), "_SUCCESS")
    wait_for("the flag of the sparse sink's batch", lambda: os.path.exists(sparse_flag),
             timeout=60, interval=0.1)
    sinks.stop()
    for root in (spool, tmp_path / "hdfs" / "feeds"):
        seconds = flagged(root)
        assert_no_gaps(seconds)
        # From the sink's first period on, not back to the epoch.
        assert seconds[0] >= started
        assert batch_second in seconds
        empty = [rel for rel, names in partitions(root).items() if names == {"_SUCCESS"}]
        assert len(empty) >= 3
    # The flag came after the batch it closes.
    flag = os.path.join(os.path.dirname(batch), "_SUCCESS")
    assert os.stat(flag).st_mtime_ns >= os.stat(batch).st_mtime_ns
    # flag_empty_periods = false: only the period with a batch has a flag.
    assert partitions(sparse) == {os.path.relpath(os.path.dirname(sparse_batch), sparse):
                                  {os.path.basename(sparse_batch), "_SUCCESS"}}
    # The periods while the daemon was down are flagged at the next start.
    down_from = flagged(spool)[-1]
    time.sleep(2)  # periods pass while it is down (no assertion on time)
    sinks.start()
    wait_for("flags after the restart", lambda: flagged(spool)[-1] >= down_from + 4,
             timeout=60, interval=0.1)
    sinks.stop()
    assert_no_gaps(flagged(spool))
    assert [s for s in sinks.status()["sinks"] if s["last_error"]] == []
    hdfs.close()


def long_path(base, length):
    """A directory path of exactly `length` characters below `base`."""
    path = str(base)
    while len(path) < length:
        part = "d" * min(200, length - len(path) - 1)
        if len(part) < 1:
            part = "d"
        path = path + "/" + part
    assert len(path) == length
    return path


def test_a_batch_unparked_after_its_period_was_flagged_goes_into_the_open_period(
        sinks, tmp_path):
    """A batch is parked when its path is too long for the file system
    (the sink's path plus partition plus name over PATH_MAX); a person
    moves the sink to a shorter path and unparks it. By then its period
    has its flag: the batch lands in the period open at that moment, with a
    'late data' warning, never in a period its consumers took already."""
    deep = long_path(tmp_path / "deep", 4060)
    spool = tmp_path / "spool"
    common = dict(max_age="20ms", partition=LAYOUT, done_flag="_SUCCESS",
                  retry_initial="10ms", retry_max="100ms")
    sinks.start(dir_config(deep, **common))
    sinks.put("alice/shop/orders", 1, {"x": 1})
    wait_for("the batch to be parked", lambda: sinks.sink_status("spool")["parked"] == 1)
    st = sinks.sink_status("spool")
    assert st["failures"] == 1 and "too long" in st["last_error"]
    assert "parked" in sinks.stderr()
    sinks.stop()
    time.sleep(1.5)  # its period ends (no assertion on time)
    sinks.start(dir_config(spool, **common))
    # The periods up to now are flagged (in the new place) before the unpark.
    now = int(time.time())
    wait_for("flags up to now", lambda: flagged(spool) and flagged(spool)[-1] >= now,
             timeout=60, interval=0.1)
    sinks.ctl("sink", "unpark", "spool")
    wait_for("the unparked batch", lambda: batch_files(spool, recursive=True), timeout=60)
    [batch] = batch_files(spool, recursive=True)
    landed = seconds_of(os.path.relpath(os.path.dirname(batch), spool))
    assert landed > now, "the batch went into a period that was already flagged"
    wait_for("the flag of its new period",
             lambda: os.path.exists(os.path.join(os.path.dirname(batch), "_SUCCESS")),
             timeout=60, interval=0.1)
    sinks.stop()
    assert "late data" in sinks.stderr()
    assert sinks.sink_status("spool")["parked"] == 0
    with open(batch) as f:
        assert '"key":1' in f.read()
    assert_no_gaps(flagged(spool))
