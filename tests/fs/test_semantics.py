"""File-system semantics the kernel and tools rely on."""
import ctypes
import errno
import json
import os
import signal
import subprocess

import pytest

from conftest import Idb, is_mounted, sh

RENAME_NOREPLACE = 1
RENAME_EXCHANGE = 2
AT_FDCWD = -100
libc = ctypes.CDLL(None, use_errno=True)


def renameat2(old, new, flags):
    rc = libc.renameat2(AT_FDCWD, old.encode(), AT_FDCWD, new.encode(), flags)
    return 0 if rc == 0 else ctypes.get_errno()


def read_json(path):
    with open(path) as f:
        return json.loads(f.read())


def test_rename_noreplace(idb):
    idb.ctl("put", "alice/shop/orders", "1", '{"v": 1}')
    idb.ctl("put", "alice/shop/orders", "2", '{"v": 2}')
    a, b = os.path.join(idb.store, "1.json"), os.path.join(idb.store, "2.json")
    assert renameat2(a, b, RENAME_NOREPLACE) == errno.EEXIST
    assert read_json(a) == {"v": 1} and read_json(b) == {"v": 2}
    c = os.path.join(idb.store, "3.json")
    assert renameat2(a, c, RENAME_NOREPLACE) == 0
    assert sorted(os.listdir(idb.store)) == ["2.json", "3.json"]


def test_rename_exchange(idb):
    idb.ctl("put", "alice/shop/orders", "1", '{"v": 1}')
    idb.ctl("put", "alice/shop/orders", "2", '{"v": 2}')
    a, b = os.path.join(idb.store, "1.json"), os.path.join(idb.store, "2.json")
    ino_a, ino_b = os.stat(a).st_ino, os.stat(b).st_ino
    assert renameat2(a, b, RENAME_EXCHANGE) == 0
    assert read_json(a) == {"v": 2} and read_json(b) == {"v": 1}
    # The inodes moved with the contents, as on any file system.
    assert os.stat(a).st_ino == ino_b and os.stat(b).st_ino == ino_a
    last = idb.changes()[-2:]
    assert sorted((c["key"], c["value"]["v"]) for c in last) == [(1, 2), (2, 1)]
    missing = os.path.join(idb.store, "9.json")
    assert renameat2(a, missing, RENAME_EXCHANGE) == errno.ENOENT


def test_exchange_with_scratch_validates(idb):
    idb.ctl("put", "alice/shop/orders", "1", '{"v": 1}')
    sh("echo 'not json' > draft.txt", cwd=idb.store)
    a = os.path.join(idb.store, "1.json")
    assert renameat2(a, os.path.join(idb.store, "draft.txt"), RENAME_EXCHANGE) == errno.EINVAL
    assert read_json(a) == {"v": 1}
    # Renaming a scratch file that is not JSON onto a record: refused too.
    with pytest.raises(OSError) as e:
        os.rename(os.path.join(idb.store, "draft.txt"), a)
    assert e.value.errno == errno.EINVAL
    # mv reports EINVAL from rename(2) in its own words, but fails.
    assert sh("mv draft.txt 1.json", cwd=idb.store, check=False).returncode != 0
    assert read_json(a) == {"v": 1}
    assert sorted(os.listdir(idb.store)) == ["1.json", "draft.txt"]


def test_rename_between_stores_and_to_scratch(idb):
    os.mkdir(idb.path("alice", "shop", "archive"))
    idb.ctl("put", "alice/shop/orders", "1", '{"v": 1}')
    sh("mv orders/1.json archive/1.json", cwd=idb.path("alice", "shop"))
    assert os.listdir(idb.store) == []
    assert read_json(idb.path("alice", "shop", "archive", "1.json")) == {"v": 1}
    changes = idb.changes()[-2:]
    assert {(c["store"], c["op"]) for c in changes} == {("archive", "put"),
                                                       ("orders", "delete")}
    p = sh("mv archive orders2", cwd=idb.path("alice", "shop"), check=False)
    assert p.returncode != 0  # directories are not renamed


def test_removed_while_open_reads_on(idb):
    idb.ctl("put", "alice/shop/orders", "1", '{"v": 1}')
    path = os.path.join(idb.store, "1.json")
    with open(path) as f:
        os.unlink(path)
        assert not os.path.exists(path)
        assert json.loads(f.read()) == {"v": 1}
        assert os.fstat(f.fileno()).st_nlink == 0
    # The same key made again is a new record with its history.
    sh("echo '{\"v\": 2}' > 1.json", cwd=idb.store)
    assert os.getxattr(path, "user.idbmount.rev") == b"3"


def test_getattr_reports_unflushed_writes(idb):
    path = os.path.join(idb.store, "1.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b'{"v": "' + b"x" * 5000 + b'"}')
        assert os.fstat(fd).st_size == 5009
        # Another process (no shared kernel state with our fd) sees it too.
        out = subprocess.run(["stat", "-c", "%s", path], capture_output=True, text=True)
        assert out.stdout.strip() == "5009"
    finally:
        os.close(fd)
    assert os.stat(path).st_size == 5009


def test_created_json_stays_pending_until_valid(idb):
    path = os.path.join(idb.store, "new.json")
    sh("touch new.json", cwd=idb.store)
    assert os.path.exists(path) and os.stat(path).st_size == 0
    assert idb.changes() == []  # not a record yet: not synced
    sh("echo '[]' > new.json", cwd=idb.store)
    assert idb.changes()[-1]["key"] == "new"


def test_emptied_record_waits_for_valid_content(idb):
    # `: > 1.json` truncates but writes nothing: empty is not a record, so
    # nothing is committed; the file shows what was done to it until valid
    # JSON is written, and the synced record keeps its value meanwhile.
    idb.ctl("put", "alice/shop/orders", "1", '{"v": 1}')
    path = os.path.join(idb.store, "1.json")
    sh(": > 1.json", cwd=idb.store)
    assert os.stat(path).st_size == 0
    assert json.loads(idb.ctl("get", "alice/shop/orders", "1").stdout) == {"v": 1}
    assert len(idb.changes()) == 1
    sh("echo '{\"v\": 2}' >> 1.json", cwd=idb.store)
    assert read_json(path) == {"v": 2}
    assert [c["value"] for c in idb.changes()] == [{"v": 1}, {"v": 2}]


def test_emptied_record_reverts_at_remount(idb):
    idb.ctl("put", "alice/shop/orders", "1", '{"v": 1}')
    sh(": > 1.json", cwd=idb.store)
    idb.daemon.stop()
    idb.daemon.start()
    assert read_json(os.path.join(idb.store, "1.json")) == {"v": 1}


def test_emptied_scratch_file_is_empty(idb):
    sh("echo notes > notes.txt && : > notes.txt", cwd=idb.store)
    assert open(os.path.join(idb.store, "notes.txt")).read() == ""
    idb.daemon.stop()
    idb.daemon.start()
    assert open(os.path.join(idb.store, "notes.txt")).read() == ""


def test_slow_writer_after_truncating_open(idb):
    # `slow > 1.json`: the O_TRUNC comes long before the first write.
    idb.ctl("put", "alice/shop/orders", "1", '{"value": "a long old value"}')
    sh("(sleep 1; echo '[2]') > 1.json", cwd=idb.store)
    assert read_json(os.path.join(idb.store, "1.json")) == [2]
    assert idb.changes()[-1]["value"] == [2]


def test_fsync_commits_and_syncs(idb):
    path = os.path.join(idb.store, "1.json")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        os.write(fd, b'{"v": 1}')
        os.fsync(fd)
        assert idb.changes()[-1]["value"] == {"v": 1}
        os.write(fd, b'   ')
    finally:
        os.close(fd)
    assert [c["rev"] for c in idb.changes()] == [1, 2]
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, b'[')
        with pytest.raises(OSError) as e:
            os.fsync(fd)
        assert e.value.errno == errno.EINVAL
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    assert read_json(path) == {"v": 1}


def test_statfs(idb):
    for i in range(3):
        idb.ctl("put", "alice/shop/orders", str(i), "{}")
    st = os.statvfs(idb.mnt)
    assert st.f_namemax == 255
    assert st.f_bsize > 0 and st.f_blocks > 0
    out = sh("df -P %s" % idb.mnt).stdout
    assert "idbmount" in out


def test_xattrs_list_and_errors(idb):
    idb.ctl("put", "alice/shop/orders", "1", "{}")
    path = os.path.join(idb.store, "1.json")
    assert sorted(os.listxattr(path)) == ["user.idbmount.origin", "user.idbmount.rev",
                                          "user.idbmount.seq"]
    with pytest.raises(OSError) as e:
        os.getxattr(path, "user.other")
    assert e.value.errno == errno.ENODATA
    with pytest.raises(OSError) as e:
        os.setxattr(path, "user.other", b"1")
    assert e.value.errno == errno.ENOTSUP


def test_chmod_chown_utime_accepted(idb):
    idb.ctl("put", "alice/shop/orders", "1", "{}")
    sh("chmod 600 1.json && chown root:root 1.json && touch -d 2020-01-01 1.json",
       cwd=idb.store)
    assert read_json(os.path.join(idb.store, "1.json")) == {}


def test_sigterm_stops_cleanly_and_data_persists(tmp_path):
    idb = Idb(tmp_path)
    idb.ctl("client", "add", "alice")
    idb.daemon.start()
    os.makedirs(idb.store)
    sh("echo '{\"v\": 1}' > 1.json && echo scratch > notes.txt", cwd=idb.store)
    idb.daemon.proc.send_signal(signal.SIGTERM)
    assert idb.daemon.proc.wait(timeout=20) == 0
    idb.daemon.proc = None
    idb.daemon.log.close()
    assert not is_mounted(idb.mnt)
    idb.daemon.start()
    try:
        assert sorted(os.listdir(idb.store)) == ["1.json", "notes.txt"]
        assert read_json(os.path.join(idb.store, "1.json")) == {"v": 1}
        assert [c["seq"] for c in idb.changes()] == [1]
    finally:
        assert idb.daemon.stop() == 0


def test_second_daemon_on_same_data_refused(idb, tmp_path):
    other = tmp_path / "mnt2"
    other.mkdir()
    p = subprocess.run([os.environ.get("IDBMOUNT_BIN", "build/idbmount"), "-f", "--data",
                        idb.data, str(other)], capture_output=True, text=True, timeout=20)
    assert p.returncode == 1 and "already served" in p.stderr


def test_allow_other_with_default_permissions(start_idb):
    idb = start_idb(["allow_other,default_permissions"])
    assert os.listdir(idb.mnt) == ["alice"]
    opts = sh("findmnt -no OPTIONS %s" % idb.mnt).stdout
    assert "allow_other" in opts and "default_permissions" in opts


def test_import_progress_bar_on_a_terminal(idb, tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text("".join(json.dumps({"key": i, "value": {"i": i}}) + "\n"
                         for i in range(5000)))
    ctl = os.environ.get("IDBMOUNTCTL_BIN", "build/idbmountctl")
    # script(1) gives the command a terminal, as a person at a shell has.
    p = sh("script -qec '%s --data %s import alice/shop/orders %s' /dev/null"
           % (ctl, idb.data, f))
    assert "importing [####" in p.stdout and "100%" in p.stdout
    assert "imported 5000 records" in p.stdout
    # Not a terminal: no bar, just the summary.
    p = idb.ctl("import", "alice/shop/orders", str(f))
    assert "####" not in p.stderr and "%" not in p.stderr
    assert "imported 5000 records" in p.stdout
