"""Every bad input gets a clear error and loses nothing."""
import errno
import json
import os
import subprocess

import pytest

from conftest import Daemon, sh, unmount


def write_and_close(path, data, flags=os.O_WRONLY | os.O_CREAT | os.O_TRUNC):
    """Writes through one descriptor; returns the errno of close (0 if ok)."""
    fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, data)
    except OSError as e:
        try:
            os.close(fd)
        except OSError:
            pass  # close says it again
        return e.errno
    try:
        os.close(fd)
    except OSError as e:
        return e.errno
    return 0


def xattr(path, name):
    return os.getxattr(path, "user.idbmount." + name).decode()


def test_invalid_json_fails_close_and_keeps_record(idb):
    idb.ctl("put", "alice/shop/orders", "1", '{"v": 1}')
    path = os.path.join(idb.store, "1.json")
    before = open(path).read()
    rev = xattr(path, "rev")
    assert write_and_close(path, b'{"v": 2') == errno.EINVAL
    assert open(path).read() == before
    assert xattr(path, "rev") == rev
    assert os.stat(path).st_size == len(before)
    assert "invalid JSON" in idb.daemon.stderr()
    assert len(idb.changes()) == 1


def test_inline_key_must_agree_with_name(idb):
    idb.ctl("mkstore", "alice/shop/users", "--keypath", '"id"')
    users = idb.path("alice", "shop", "users")
    path = os.path.join(users, "5.json")
    assert write_and_close(path, b'{"id": 6}') == errno.EINVAL
    assert "the record's key is 5" in idb.daemon.stderr()
    # A value without the key gets it added, and the kernel shows it.
    assert write_and_close(path, b'{"name": "x"}') == 0
    assert json.loads(open(path).read()) == {"name": "x", "id": 5}
    assert os.stat(path).st_size == len(open(path).read().encode())
    assert write_and_close(path, b'{"id": 5, "name": "y"}') == 0
    assert xattr(path, "rev") == "2"


def names_everywhere(idb, store_dir, db_path):
    """The names a store shows: to Python, to `ls`, to `grep -rl`, and
    the keys `idbmountctl ls` lists."""
    listed = set(os.listdir(store_dir))
    shown = set(sh("ls -a", cwd=store_dir).stdout.split()) - {".", ".."}
    grepped = set(os.path.basename(line) for line in
                  sh("grep -rL no-such-text . || true", cwd=store_dir).stdout.split())
    keys = idb.ctl("ls", db_path).stdout
    return listed, shown, grepped, keys


@pytest.mark.parametrize("keypath,name,content,why", [
    (None, "20.json", b"bad\n", "invalid JSON"),
    ('"id"', "8.json", b'{"id": 7, "x": 1}\n', "the record's key is 8"),
])
def test_refused_new_file_leaves_no_name(idb, keypath, name, content, why):
    """A refused commit of a file that had no record takes its name away
    again, before close returns: no empty ghost in `ls` or `grep -r`, the
    same in `idbmountctl ls`, and still none after a restart."""
    db_path = "alice/shop/orders"
    store_dir = idb.store
    if keypath:
        idb.ctl("mkstore", "alice/shop/users", "--keypath", keypath)
        db_path = "alice/shop/users"
        store_dir = idb.path("alice", "shop", "users")
    idb.ctl("put", db_path, "1", '{"id": 1}')
    path = os.path.join(store_dir, name)
    assert write_and_close(path, content) == errno.EINVAL
    assert why in idb.daemon.stderr()
    assert not os.path.exists(path)
    # The same through a shell, which ignores the error of close.
    other = "3" + name
    sh("printf '%%s' '%s' > %s" % (content.decode().strip(), other), cwd=store_dir)
    for seen in names_everywhere(idb, store_dir, db_path)[:3]:
        assert seen == {"1.json"}, seen
    assert names_everywhere(idb, store_dir, db_path)[3].split() == ["1"]
    idb.daemon.stop()
    idb.daemon.start()
    assert sorted(os.listdir(store_dir)) == ["1.json"]
    assert len(idb.changes()) == 1
    # The name is free: the next valid write makes the record.
    good = b'{"id": %s}' % name[:-len(".json")].encode()
    assert write_and_close(path, good) == 0
    assert json.loads(open(path).read()) == json.loads(good)


@pytest.mark.parametrize("gives_up_the_name,left", [
    ("echo bad > 1.json", []),  # a refused first write
    ("touch 1.json && rm 1.json", []),
    ("touch 1.json && mv 1.json notes.txt", ["notes.txt"]),
])
def test_a_deleted_records_name_taken_and_given_up_keeps_its_history(idb, gives_up_the_name,
                                                                     left):
    """A new file in a deleted record's place (a refused write, or `touch`)
    carries its tombstone's revision; when the name goes again the
    tombstone comes back, or the key's next revision would start again at
    1 and a browser's base from before the delete be taken for current."""
    idb.ctl("put", "alice/shop/orders", "1", '{"v": 1}')
    sh("rm 1.json && " + gives_up_the_name, cwd=idb.store)
    assert os.listdir(idb.store) == left
    sh("echo '{\"v\": 2}' > 1.json", cwd=idb.store)
    assert xattr(os.path.join(idb.store, "1.json"), "rev") == "3"
    assert [c["rev"] for c in idb.changes()] == [1, 2, 3]


def test_refused_write_of_an_empty_file_keeps_it(idb):
    """`touch` made the file before: a refused write leaves it as it was."""
    sh("touch 20.json && echo bad > 20.json", cwd=idb.store)
    assert os.listdir(idb.store) == ["20.json"]
    assert os.stat(os.path.join(idb.store, "20.json")).st_size == 0


def test_new_file_written_by_two_processes_commits_at_the_last_close(idb):
    """An exiting child closes its copy of the descriptor first, on half
    a value: that close fails, but the file the shell still writes to
    becomes the record at the last close."""
    sh("( /usr/bin/printf '{\"v\":'; printf '1}' ) > 20.json", cwd=idb.store)
    assert json.loads(open(os.path.join(idb.store, "20.json")).read()) == {"v": 1}
    assert [c["value"] for c in idb.changes()] == [{"v": 1}]


def test_vim_writing_a_new_file_with_invalid_json(idb):
    p = sh("vim -Es -u NONE -i NONE -c 'call setline(1, \"bad\")' -c 'wq' 30.json",
           cwd=idb.store, check=False)
    assert p.returncode != 0
    assert "30.json" not in os.listdir(idb.store)
    sh("vim -Es -u NONE -i NONE -c 'call setline(1, \"[1]\")' -c 'wq' 30.json",
       cwd=idb.store)
    assert json.loads(open(os.path.join(idb.store, "30.json")).read()) == [1]


def test_rename_of_invalid_scratch_onto_a_record_says_why(idb):
    """A scratch file that is no valid record cannot become one: rename
    fails (EINVAL), the record keeps its value, and the log gives the whole
    reason once (it is formatted from the store's last error)."""
    idb.ctl("put", "alice/shop/orders", "1", '{"v": 1}')
    scratch = os.path.join(idb.store, "draft.txt")
    with open(scratch, "w") as f:
        f.write('{"v": 2')
    with pytest.raises(OSError) as e:
        os.rename(scratch, os.path.join(idb.store, "1.json"))
    assert e.value.errno == errno.EINVAL
    assert json.loads(open(os.path.join(idb.store, "1.json")).read()) == {"v": 1}
    lines = [line for line in idb.daemon.stderr().splitlines() if "cannot become" in line]
    assert len(lines) == 1, lines
    assert lines[0].count("cannot become") == 1, lines[0]
    assert "cannot become 1.json: invalid JSON: " in lines[0], lines[0]


@pytest.mark.parametrize("name", [
    "%61.json",            # non-canonical escape of "a"
    "~x.json",             # unknown tag
    "~h" + "0" * 64 + ".json",  # hashed names are made by idbmount only
    "~bAAE=.json",         # padded base64
    "~d2026-13-01T00:00:00.000Z.json",
    "~a[1,.json",
])
def test_names_that_are_not_keys(idb, name):
    with pytest.raises(OSError) as e:
        os.open(os.path.join(idb.store, name), os.O_WRONLY | os.O_CREAT, 0o644)
    assert e.value.errno == errno.EINVAL
    assert not os.path.exists(os.path.join(idb.store, name))


def test_links_are_refused(idb):
    idb.ctl("put", "alice/shop/orders", "1", "{}")
    path = os.path.join(idb.store, "1.json")
    with pytest.raises(OSError) as e:
        os.link(path, os.path.join(idb.store, "2.json"))
    assert e.value.errno == errno.EPERM
    with pytest.raises(OSError) as e:
        os.symlink("1.json", os.path.join(idb.store, "3.json"))
    assert e.value.errno == errno.EPERM
    assert os.listdir(idb.store) == ["1.json"]


def test_files_only_in_store_directories(idb):
    with pytest.raises(OSError) as e:
        open(idb.path("alice", "x.json"), "w")
    assert e.value.errno == errno.EPERM
    with pytest.raises(OSError) as e:
        os.mkdir(idb.path("bob"))
    assert e.value.errno == errno.EPERM
    assert "idbmountctl client add" in idb.daemon.stderr()


def test_record_over_the_cap(start_idb):
    idb = start_idb(["max_record=1024"])
    path = os.path.join(idb.store, "1.json")
    assert write_and_close(path, b'{"v": 1}') == 0
    big = b'{"v": "' + b"x" * 2000 + b'"}'
    assert write_and_close(path, big) == errno.EFBIG
    assert open(path).read() == '{"v": 1}'
    p = idb.ctl("put", "alice/shop/orders", "2", json.dumps({"v": "y" * 2000}),
                check=False)
    # idbmountctl has its own (default) cap; the mount's is per daemon.
    assert p.returncode == 0
    # A record over the mount's cap is still read whole (the cap bounds
    # what writes make), and rewriting it at that size is refused.
    path2 = os.path.join(idb.store, "2.json")
    with open(path2) as f:
        assert json.load(f) == {"v": "y" * 2000}
    assert subprocess.run(["grep", "-c", "yyy", path2], capture_output=True,
                          text=True).stdout == "1\n"
    assert write_and_close(path2, json.dumps({"v": "z" * 2000}).encode()) == errno.EFBIG
    with open(path2) as f:
        assert json.load(f) == {"v": "y" * 2000}


def write_once_and_close(path, data, flags):
    """One write() of `data` and a close, as a program that does not look
    at short writes does; returns (what write returned or its errno as a
    negative number, the errno of close or 0)."""
    fd = os.open(path, flags, 0o644)
    try:
        wrote = os.write(fd, data)
    except OSError as e:
        wrote = -e.errno
    try:
        os.close(fd)
    except OSError as e:
        return wrote, e.errno
    return wrote, 0


@pytest.mark.parametrize("private_writes", [False, True])
def test_a_big_write_past_the_cap_is_never_a_silent_success(start_idb, private_writes):
    """One write() bigger than a FUSE write request arrives in pieces; the
    piece that passes the cap fails, and the kernel reports the pieces
    before it as a short write. The program (or at the latest close) must
    get EFBIG, and the record keep its value, never a close() that returns
    0 with nothing stored."""
    idb = start_idb(["max_record=1M"] + (["private_writes"] if private_writes else []))
    path = os.path.join(idb.store, "1.json")
    assert write_and_close(path, b'{"v": 1}') == 0
    rev = xattr(path, "rev")
    big = b'{"v": "' + b"x" * (2 << 20) + b'"}'
    for flags in (os.O_WRONLY | os.O_TRUNC, os.O_WRONLY):
        wrote, closed = write_once_and_close(path, big, flags)
        # The kernel took the pieces before the cap: a short write ...
        assert 0 < wrote < len(big)
        # ... and close says what became of it.
        assert closed == errno.EFBIG
        assert open(path).read() == '{"v": 1}'
        assert xattr(path, "rev") == rev
        assert os.stat(path).st_size == len('{"v": 1}')
    # A new record: EFBIG too (not EINVAL for the cut JSON), and no record.
    new = os.path.join(idb.store, "2.json")
    wrote, closed = write_once_and_close(new, big, os.O_WRONLY | os.O_CREAT | os.O_EXCL)
    assert 0 < wrote < len(big) and closed == errno.EFBIG
    assert idb.ctl("get", "alice/shop/orders", "2", check=False).returncode != 0
    assert "over the cap" in idb.daemon.stderr()


def test_full_disk(tmp_path):
    """A full data directory: the writer gets ENOSPC, nothing is corrupted."""
    from conftest import Idb
    data_fs = tmp_path / "small"
    data_fs.mkdir()
    sh("mount -t tmpfs -o size=2m tmpfs %s" % data_fs)
    try:
        idb = Idb(tmp_path)
        idb.data = str(data_fs / "data")
        idb.daemon = Daemon(idb.data, idb.mnt)
        idb.ctl("client", "add", "alice")
        idb.daemon.start()
        try:
            os.makedirs(idb.store)
            chunk = b'{"pad": "' + b"z" * 60000 + b'"}'
            committed, failed = [], None
            for i in range(200):
                rc = write_and_close(os.path.join(idb.store, "%d.json" % i), chunk)
                if rc:
                    failed = rc
                    break
                committed.append(i)
            assert failed == errno.ENOSPC, failed
            assert committed, "nothing fit on a 2 MB disk"
            assert "No space left" in idb.daemon.stderr()
            # Every committed record reads back whole.
            for i in committed:
                with open(os.path.join(idb.store, "%d.json" % i), "rb") as f:
                    assert f.read() == chunk
        finally:
            assert idb.daemon.stop() == 0
        out = subprocess.run(
            ["python3", "-c",
             "import sqlite3,sys; c=sqlite3.connect(sys.argv[1]);"
             "print(c.execute('PRAGMA integrity_check').fetchone()[0])",
             idb.data + "/idbmount.db"], capture_output=True, text=True)
        assert out.stdout.strip() == "ok"
    finally:
        unmount(str(tmp_path / "mnt"))
        sh("umount %s" % data_fs, check=False)


def test_import_with_bad_lines_imports_nothing(idb, tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text('{"key": 1, "value": {"a": 1}}\n'
                 'not json\n'
                 '{"key": {"~d": "bad"}, "value": 1}\n'
                 '{"key": 2, "value": {"a": 2}}\n')
    p = idb.ctl("import", "alice/shop/orders", str(f), check=False)
    assert p.returncode == 1
    assert ":2:" in p.stderr and ":3:" in p.stderr
    assert ":1:" not in p.stderr and ":4:" not in p.stderr
    assert os.listdir(idb.store) == []
    assert idb.changes() == []
    f.write_text('{"key": 1, "value": {"a": 1}}\n\n{"key": 2, "value": {"a": 2}}\n')
    idb.ctl("import", "alice/shop/orders", str(f))
    assert sorted(os.listdir(idb.store)) == ["1.json", "2.json"]


def test_unknown_mount_options_fail_clearly(tmp_path):
    for opts, msg in ((["cache=sometimes"], "cache=sometimes"),
                      (["allow_other"], "default_permissions"),
                      (["max_record=-1"], "max_record")):
        p = subprocess.run([os.environ.get("IDBMOUNT_BIN", "build/idbmount"), "-f",
                            "--data", str(tmp_path / "d"), *sum((["-o", o] for o in opts), []),
                            str(tmp_path)], capture_output=True, text=True, timeout=20)
        assert p.returncode == 2, (opts, p.stderr)
        assert msg in p.stderr
