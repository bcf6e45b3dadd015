"""idbmountctl backup and restore (src/DESIGN.md, "Backup and restore"):
a backup taken while the daemon serves pushes holds every push acknowledged
before it started; a restored directory gets a new store epoch, so its sinks
never write a shipped name again and lose no change; bad inputs are refused
with a message and change nothing."""
import hashlib
import http.client
import json
import os
import shutil
import sqlite3
import subprocess
import threading
import time

from conftest import (IDBMOUNTCTL, batch_files, pull_all, read_lines, wait_for)

STRESS = float(os.environ.get("IDBMOUNT_STRESS", "1"))
PUSHES = max(1000, int(10000 * STRESS))
THREADS = 4


def run_ctl(*args, data=None, user=None):
    cmd = [IDBMOUNTCTL] + (["--data", data] if data else []) + list(args)
    if user:
        cmd = ["setpriv", "--reuid=%s" % user, "--regid=65534", "--clear-groups"] + cmd
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def tree(path):
    """Every file under `path` with its content's digest."""
    out = {}
    for dirpath, _, filenames in os.walk(path):
        for n in filenames:
            p = os.path.join(dirpath, n)
            out[os.path.relpath(p, path)] = digest(p)
    return out


def epoch_of(data):
    db = sqlite3.connect("file:%s/idbmount.db?mode=ro" % data, uri=True)
    try:
        return db.execute("SELECT value FROM meta WHERE name = 'epoch'").fetchone()[0]
    finally:
        db.close()


# ---- (a) a backup while pushes go on ----------------------------------------------

def test_backup_during_pushes_holds_every_acknowledged_push(ops, tmp_path):
    a = ops.node("a")
    token = a.ctl("client", "add", "alice").stdout.strip()
    a.start()
    port = a.port()
    a.api(token).schema("shop", [{"name": "orders"}])
    acked = {}  # key -> time.monotonic() when its push was answered
    errors = []
    lock = threading.Lock()

    def pusher(first):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        headers = {"Authorization": "Bearer " + token, "Content-Type": "application/json"}
        try:
            for i in range(first, PUSHES, THREADS):
                body = json.dumps({"mutations": [{"id": "m%d" % i, "db": "shop",
                                                  "store": "orders", "key": i,
                                                  "op": "put", "value": {"i": i}}]})
                conn.request("POST", "/v1/push", body=body, headers=headers)
                r = conn.getresponse()
                answer = r.read()
                if r.status != 200 or json.loads(answer)["results"][0]["status"] != "ok":
                    raise AssertionError("push %d: %d %r" % (i, r.status, answer[:200]))
                with lock:
                    acked[i] = time.monotonic()
        except Exception as e:  # reported by the test's thread
            errors.append(e)
        finally:
            conn.close()

    threads = [threading.Thread(target=pusher, args=(t,)) for t in range(THREADS)]
    for t in threads:
        t.start()
    wait_for("a fifth of the pushes", lambda: len(acked) >= PUSHES // 5 or errors,
             timeout=300)
    dest = str(tmp_path / "backup.idbm")
    started = time.monotonic()
    p = run_ctl("backup", dest, data=a.data)
    finished = time.monotonic()
    for t in threads:
        t.join()
    assert not errors, errors
    assert p.returncode == 0, p.stderr
    assert "backed up" in p.stderr and p.stdout == ""
    assert oct(os.stat(dest).st_mode & 0o777) == "0o600"
    with lock:
        before = {k for k, t in acked.items() if t < started}
        during = [k for k, t in acked.items() if started <= t <= finished]
    assert before and len(acked) == PUSHES
    # The pushes went on while the backup ran: it did not hold writers up.
    assert during, "no push was answered while the backup ran"

    b = ops.node("b")
    p = run_ctl("restore", dest, b.data)
    assert p.returncode == 0, p.stderr
    b.start()
    assert "restored at" in b.stderr()
    api = b.api(token)  # the client and its token came back
    changes, epoch = pull_all(api)
    present = {c["key"] for c in changes}
    missing = sorted(before - present)
    assert not missing, "%d acknowledged pushes missing, e.g. %s" % (len(missing), missing[:10])
    assert all(c["value"] == {"i": c["key"]} for c in changes)
    # A restore is a new epoch: browsers forget their checkpoints.
    _, epoch_a = pull_all(a.api(token), page=1)  # only the epoch is looked at
    assert epoch != epoch_a and epoch == epoch_of(b.data)
    # The restored daemon serves: a push is answered and pulled.
    assert api.push([{"id": "after", "db": "shop", "store": "orders", "key": "after",
                      "op": "put", "value": {"after": True}}])[0]["status"] == "ok"
    assert any(c["key"] == "after" for c in pull_all(api)[0])


# ---- (b) sinks after a restore --------------------------------------------------

def records(prefix, n):
    return [("%s%d" % (prefix, i), {"v": "%s%d" % (prefix, i)}) for i in range(n)]


def shipped(spool):
    """(key, value) of every put line in the spool's batch files."""
    out = set()
    for line in read_lines(batch_files(spool)):
        c = json.loads(line)
        out.add((c["key"], json.dumps(c.get("value"), sort_keys=True)))
    return out


def test_restore_never_rewrites_a_shipped_name_and_loses_no_change(ops, tmp_path):
    spool = tmp_path / "spool"
    config = str(tmp_path / "idbmount.ini")
    with open(config, "w") as f:
        f.write("[sink spool]\ntype = dir\npath = %s\nmax_age = 50ms\n" % spool)
    a = ops.node("a", config)
    a.ctl("client", "add", "alice")
    a.start()
    a.import_lines("alice/shop/orders", records("shipped", 20))
    a.wait_caught_up("spool")
    assert a.stop() == 0
    # In the backup, not yet shipped when it was taken.
    a.import_lines("alice/shop/orders", records("pending", 10))
    dest = str(tmp_path / "backup.idbm")
    p = run_ctl("backup", dest, data=a.data)
    assert p.returncode == 0, p.stderr
    before_backup = records("shipped", 20) + records("pending", 10)
    # After the backup: shipped by the old directory, lost by the restore.
    a.start()
    a.import_lines("alice/shop/orders", records("lost", 15))
    a.wait_caught_up("spool")
    assert a.stop() == 0
    spool_before = tree(spool)
    old_epoch = epoch_of(a.data)
    assert spool_before and all(old_epoch in n for n in spool_before)

    b = ops.node("b", config)
    p = run_ctl("restore", dest, b.data)
    assert p.returncode == 0, p.stderr
    new_epoch = epoch_of(b.data)
    assert new_epoch != old_epoch and new_epoch in p.stderr
    b.start()
    # New changes take the seqs the lost ones had.
    b.import_lines("alice/shop/orders", records("restored", 15))
    b.wait_caught_up("spool")
    assert b.stop() == 0

    spool_after = tree(spool)
    for name, content in spool_before.items():
        assert spool_after.get(name) == content, "%s was rewritten or removed" % name
    new_names = set(spool_after) - set(spool_before)
    assert new_names and all(new_epoch in n for n in new_names), new_names
    got = shipped(spool)
    want = {(k, json.dumps(v, sort_keys=True))
            for k, v in before_backup + records("restored", 15)}
    assert not want - got, sorted(want - got)[:10]
    # The changes the sink had not passed at the backup were shipped again,
    # under new names (a repeat downstream, which a restore may cause).
    again = [n for n in new_names
             if any(json.loads(l)["key"].startswith("pending")
                    for l in read_lines([os.path.join(spool, n)]))]
    assert again


# ---- (c) bad inputs -------------------------------------------------------------

def made_backup(ops, tmp_path):
    a = ops.node("a")
    a.ctl("client", "add", "alice")
    a.ctl("put", "alice/shop/orders", "1", '{"x": 1}')
    dest = str(tmp_path / "good.idbm")
    p = run_ctl("backup", dest, data=a.data)
    assert p.returncode == 0, p.stderr
    return a, dest


def test_backup_refuses_an_existing_dest(ops, tmp_path):
    a, _ = made_backup(ops, tmp_path)
    dest = tmp_path / "taken"
    dest.write_text("keep me\n")
    listing = sorted(os.listdir(tmp_path))
    p = run_ctl("backup", str(dest), data=a.data)
    assert p.returncode == 1
    assert "idbmountctl: backup: %s exists" % dest in p.stderr
    assert dest.read_text() == "keep me\n"
    assert sorted(os.listdir(tmp_path)) == listing  # no partial copy left
    p = run_ctl("backup", str(tmp_path / "no" / "such" / "dir" / "b.idbm"), data=a.data)
    assert p.returncode == 1 and "cannot create" in p.stderr and "No such file" in p.stderr
    p = run_ctl("backup", str(tmp_path / "x.idbm"), data=str(tmp_path / "missing"))
    assert p.returncode == 1 and "no idbmount data" in p.stderr
    assert not os.path.exists(tmp_path / "missing") and not os.path.exists(tmp_path / "x.idbm")
    p = run_ctl("backup", data=a.data)
    assert p.returncode == 2 and "usage:" in p.stderr


def refused_restore(backup, target, *expect, user=None):
    """A restore that must fail with each of `expect` in its message and
    leave `backup` and `target` as they were."""
    before_backup = digest(backup) if os.path.isfile(backup) else None
    existed = os.path.exists(target)
    before_target = tree(target) if existed else None
    p = run_ctl("restore", backup, target, user=user)
    assert p.returncode == 1, p
    assert p.stderr.startswith("idbmountctl: restore: "), p.stderr
    for e in expect:
        assert e in p.stderr, p.stderr
    assert p.stdout == ""
    if before_backup:
        assert digest(backup) == before_backup
    assert os.path.exists(target) == existed
    if existed:
        assert tree(target) == before_target
    return p


def test_restore_refuses_bad_backups_and_used_directories(ops, tmp_path):
    _, good = made_backup(ops, tmp_path)
    new_dir = str(tmp_path / "new")
    refused_restore(str(tmp_path / "absent.idbm"), new_dir, "cannot read the backup",
                    "No such file or directory")
    refused_restore(str(tmp_path), new_dir, "is not a file")
    junk = tmp_path / "junk.idbm"
    junk.write_text("hello, not a database\n")
    refused_restore(str(junk), new_dir, "is not an idbmount backup (not an SQLite database)")
    other = str(tmp_path / "other.sqlite")
    db = sqlite3.connect(other)
    db.execute("CREATE TABLE t(x)")
    db.commit()
    db.close()
    refused_restore(other, new_dir, "is not an idbmount backup")
    cut = tmp_path / "cut.idbm"
    with open(good, "rb") as f:
        cut.write_bytes(f.read()[:20000])
    refused_restore(str(cut), new_dir, str(cut))
    newer = str(tmp_path / "newer.idbm")
    shutil.copyfile(good, newer)
    db = sqlite3.connect(newer)
    db.execute("PRAGMA user_version = 99")
    db.close()
    refused_restore(newer, new_dir, "schema version 99", "(1)")
    # Unreadable to the user who restores (the test runs as root).
    refused_restore(good, "/tmp/idbmount-never-made", "cannot read the backup",
                    "Permission denied", user="nobody")
    # A directory that holds anything, a data directory above all.
    used = tmp_path / "used"
    used.mkdir()
    (used / "notes.txt").write_text("mine\n")
    refused_restore(good, str(used), "is not empty (it holds notes.txt)")
    p = run_ctl("restore", good, new_dir)
    assert p.returncode == 0, p.stderr
    refused_restore(good, new_dir, "is not empty (it holds idbmount.db)")
    p = run_ctl("restore", good)
    assert p.returncode == 2 and "usage:" in p.stderr


def test_restore_renames_intents_to_the_new_epoch(ops, tmp_path):
    """The intents of a backup (here three parked batches of the version-0
    fixture) keep their seqs under names of the new epoch, so unparking one
    never writes a name of the old epoch again."""
    from test_upgrade import load_fixture
    a = ops.node("a")
    load_fixture(a.data)
    dest = str(tmp_path / "backup.idbm")
    assert run_ctl("backup", dest, data=a.data).returncode == 0
    old = epoch_of(a.data)
    b = ops.node("b")
    p = run_ctl("restore", dest, b.data)
    assert p.returncode == 0, p.stderr
    assert "3 unfinished or parked batches" in p.stderr
    new = epoch_of(b.data)

    def intents(data):
        db = sqlite3.connect("file:%s/idbmount.db?mode=ro" % data, uri=True)
        try:
            return db.execute("SELECT id, state, from_seq, to_seq, name FROM sink_intents "
                              "ORDER BY id").fetchall()
        finally:
            db.close()

    before, after = intents(a.data), intents(b.data)
    assert len(before) == 3 and all(old in i[4] for i in before)
    assert [i[:4] for i in after] == [i[:4] for i in before]
    assert [i[4] for i in after] == [i[4].replace(old, new) for i in before]
    meta = dict(sqlite3.connect("file:%s/idbmount.db?mode=ro" % b.data, uri=True)
                .execute("SELECT name, value FROM meta").fetchall())
    assert meta["restored_from_epoch"] == old and meta["restored_last_seq"] == "21"
