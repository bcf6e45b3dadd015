"""The webhdfs sink against a strict WebHDFS peer (NameNode + DataNode,
or HttpFS): CREATE under a temp name following the 307, RENAME with false
as a failure, GETFILESTATUS to finish a batch after a crash."""
import gzip
import json
import os
import threading
import time

from conftest import read_lines, wait_for
from peers import WebHdfsPeer


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
        # NameNode then DataNode for each batch, always under a temp name.
        assert len(creates) == 6
        for method, op, path, q in creates:
            assert os.path.basename(path).startswith(".") and path.endswith(".tmp")
            assert q["overwrite"] == "true" and q["user.name"] == "etl"
        renames = hdfs.ops("RENAME")
        assert len(renames) == 3
        assert all(q["destination"].startswith("/data/idb/") for _, _, _, q in renames)
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
        hdfs.hang["RENAME"] = gate
        sinks.start(hdfs_config(hdfs.url, max_age="50ms", retry_initial="50ms",
                                retry_max="200ms"))
        sinks.import_lines("alice/shop/orders", records(3))
        wait_for("the RENAME", lambda: hdfs.ops("RENAME"))
        final = hdfs.ops("RENAME")[0][3]["destination"]
        squatter = root / final.lstrip("/")
        squatter.write_text("someone else's file\n")
        del hdfs.hang["RENAME"]
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
    hdfs.hang["RENAME"] = gate
    if not rename_happens:
        hdfs.fail_next("RENAME", "drop", 1)
    sinks.start(hdfs_config(hdfs.url, max_age="50ms"))
    sinks.import_lines("alice/shop/orders", records(6))
    wait_for("the RENAME", lambda: hdfs.ops("RENAME"))
    sinks.kill()  # staged and renaming: the answer never arrives
    del hdfs.hang["RENAME"]
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
        assert len(hdfs.ops("RENAME")) == 1
        assert "was delivered before the restart" in sinks.stderr()


def test_crash_before_the_rename_took_place(sinks, tmp_path):
    root = tmp_path / "hdfs"
    with WebHdfsPeer(root) as hdfs:
        crash_during_rename(sinks, root, hdfs, rename_happens=False)
        assert len(hdfs.ops("RENAME")) == 2
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
