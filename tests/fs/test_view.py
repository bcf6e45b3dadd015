"""The view (--view DIR): the same tree as the mount, read-only, always
current, and asking the daemon nothing a local disk would not."""
import errno
import http.client
import json
import os
import random
import re
import signal
import subprocess
import threading
import time

import pytest

from conftest import Daemon, ctl, is_mounted, sh, stop_cleanly, unmount, wait_for

STORE = ("alice", "shop", "orders")


class Pair:
    """A daemon serving the mount at `mnt` and the view at `view`."""

    def __init__(self, tmp_path, options=(), args=()):
        self.data = str(tmp_path / "data")
        self.mnt = str(tmp_path / "mnt")
        self.view = str(tmp_path / "view")
        os.makedirs(self.view, exist_ok=True)
        self.token = ctl(self.data, "client", "add", "alice").stdout.strip()
        self.daemon = Daemon(self.data, self.mnt, list(options),
                             ["--view", self.view] + list(args))

    def start(self):
        self.daemon.start()
        wait_for("the view", lambda: is_mounted(self.view))
        os.makedirs(self.m(*STORE), exist_ok=True)
        return self

    def m(self, *parts):
        return os.path.join(self.mnt, *parts)

    def v(self, *parts):
        return os.path.join(self.view, *parts)

    def push(self, mutations):
        c = http.client.HTTPConnection("127.0.0.1", self.daemon.port(), timeout=60)
        c.request("POST", "/v1/push", json.dumps({"mutations": mutations}),
                  {"Authorization": "Bearer " + self.token,
                   "Content-Type": "application/json"})
        r = c.getresponse()
        body = r.read()
        c.close()
        assert r.status == 200, body
        return json.loads(body)["results"]


@pytest.fixture
def pair(tmp_path):
    made = []

    def start(options=(), args=()):
        p = Pair(tmp_path, options, args).start()
        made.append(p)
        return p

    yield start
    for p in made:
        stop_cleanly(p.daemon)
        unmount(p.view)


def put(mid, key, value, store="orders"):
    return {"id": mid, "db": "shop", "store": store, "key": key, "op": "put", "value": value}


def tree(root):
    """Every path under `root` with what a reader sees of it: type, size,
    mtime, inode, mode, owner, xattrs, content."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            path = os.path.join(dirpath, name)
            st = os.stat(path)
            xattrs = {a: os.getxattr(path, a) for a in os.listxattr(path)}
            content = None
            if not os.path.isdir(path):
                with open(path, "rb") as f:
                    content = f.read()
            # Directories keep their inode numbers; the view gives each
            # revision of a record a node of its own.
            ino = st.st_ino if os.path.isdir(path) else None
            out[os.path.relpath(path, root)] = (
                st.st_mode, st.st_size, st.st_mtime_ns, ino, st.st_uid, st.st_nlink,
                xattrs, content)
    return out


def test_the_view_shows_the_same_tree(pair):
    p = pair()
    # Records of every origin, a scratch file, a store with an inline key,
    # another database and another client.
    with open(p.m(*STORE, "1.json"), "w") as f:
        f.write('{"item": "tea"}\n')
    with open(p.m(*STORE, "notes.txt"), "w") as f:
        f.write("not a record\n")
    p.push([put("m1", 2, {"item": "cake"}), put("m2", "k/x", {"v": [1, 2]})])
    ctl(p.data, "mkstore", "alice/crm/contacts", "--keypath", '"id"')
    ctl(p.data, "put", "alice/crm/contacts", "7", '{"id": 7, "name": "Ann"}')
    ctl(p.data, "client", "add", "bob")
    ctl(p.data, "put", "bob/shop/orders", "1", '{"bob": true}')
    mount, view = tree(p.mnt), tree(p.view)
    assert set(view) == set(mount)
    assert view == mount
    assert "alice/crm/contacts/7.json" in view and "bob/shop/orders/1.json" in view
    assert b"user.idbmount.keypath" in [a.encode() for a in view["alice/crm/contacts"][6]]


@pytest.mark.parametrize("action", [
    "echo '{}' > V/alice/shop/orders/9.json",
    "echo '{}' > V/alice/shop/orders/1.json",
    "echo '{}' >> V/alice/shop/orders/1.json",
    "rm V/alice/shop/orders/1.json",
    "mv V/alice/shop/orders/1.json V/alice/shop/orders/2.json",
    "mkdir V/alice/crm",
    "rmdir V/alice/shop/orders",
    "touch V/alice/shop/orders/1.json",
    "chmod 600 V/alice/shop/orders/1.json",
    "truncate -s 0 V/alice/shop/orders/1.json",
    "setfattr -n user.x -v 1 V/alice/shop/orders/1.json",
    "sed -i s/tea/cake/ V/alice/shop/orders/1.json",
    "ln -s x V/alice/shop/orders/link",
])
def test_the_view_is_read_only(pair, action):
    p = pair()
    with open(p.m(*STORE, "1.json"), "w") as f:
        f.write('{"item": "tea"}\n')
    before = tree(p.mnt)
    r = sh(action.replace("V/", p.view + "/"), check=False)
    assert r.returncode != 0
    assert "Read-only file system" in r.stderr, r.stderr
    assert tree(p.mnt) == before and tree(p.view) == before


def fuse_requests(daemon):
    """The opcodes of the FUSE requests in a -d daemon's log, in order."""
    return re.findall(r"opcode: ([A-Z_]+)", daemon.stderr())


def test_a_warm_grep_asks_the_view_nothing(tmp_path):
    """No OPEN, OPENDIR or FLUSH after the first of each (answered ENOSYS,
    which the kernel remembers), and nothing at all for a warm grep but the
    file system's statistics: what makes the view as fast as a local disk.
    The mount, whose close commits, still sends a FLUSH per file."""
    p = Pair(tmp_path, args=["-d"]).start()
    try:
        for i in range(200):
            with open(p.m(*STORE, "%d.json" % i), "w") as f:
                f.write('{"i": %d}\n' % i)
        sh("grep -rc i %s" % p.view)  # cold: reads every file once
        first = len(fuse_requests(p.daemon))
        sh("grep -rc i %s" % p.view)
        sh("cat %s/*.json > /dev/null" % p.v(*STORE))
        warm = fuse_requests(p.daemon)[first:]
        assert set(warm) <= {"STATFS", "GETATTR"}, warm
        assert warm.count("GETATTR") <= 2, warm
        cold = fuse_requests(p.daemon)[:first]
        for op in ("OPEN", "OPENDIR", "FLUSH"):
            # The view's one ENOSYS each; the mount's writes above opened
            # nothing (no-open mode) but flushed every file.
            assert cold.count(op) <= (1 if op != "FLUSH" else 201), (op, cold.count(op))
        mark = len(fuse_requests(p.daemon))
        sh("grep -rc i %s" % p.mnt)
        assert fuse_requests(p.daemon)[mark:].count("FLUSH") >= 200
    finally:
        stop_cleanly(p.daemon)
        unmount(p.view)


def test_changes_of_every_origin_reach_the_view(pair):
    p = pair()
    rec = p.v(*STORE, "1.json")
    assert not os.path.exists(rec)  # a cached negative entry
    assert os.listdir(p.v(*STORE)) == []  # a cached listing
    # Through the mount: visible once close() returned.
    with open(p.m(*STORE, "1.json"), "w") as f:
        f.write('{"v": 1}\n')
    assert open(rec).read() == '{"v": 1}\n'
    assert os.listdir(p.v(*STORE)) == ["1.json"]
    with open(p.m(*STORE, "1.json"), "w") as f:
        f.write('{"v": "longer"}\n')
    assert open(rec).read() == '{"v": "longer"}\n'
    assert os.stat(rec).st_size == len('{"v": "longer"}\n')
    assert os.getxattr(rec, "user.idbmount.rev") == b"2"
    # sed -i and vim-style saves: a temp file renamed over the record.
    sh("sed -i s/longer/sed/ " + p.m(*STORE, "1.json"))
    assert json.loads(open(rec).read()) == {"v": "sed"}
    os.rename(p.m(*STORE, "1.json"), p.m(*STORE, "2.json"))
    assert not os.path.exists(rec)
    assert json.loads(open(p.v(*STORE, "2.json")).read()) == {"v": "sed"}
    os.unlink(p.m(*STORE, "2.json"))
    assert os.listdir(p.v(*STORE)) == []
    # Over HTTP: visible once the push is answered.
    p.push([put("h1", 3, {"v": "pushed"})])
    assert json.loads(open(p.v(*STORE, "3.json")).read()) == {"v": "pushed"}
    p.push([put("h2", 3, {"v": "again"})])
    assert json.loads(open(p.v(*STORE, "3.json")).read()) == {"v": "again"}
    p.push([{"id": "h3", "db": "shop", "store": "orders", "key": 3, "op": "delete"}])
    assert not os.path.exists(p.v(*STORE, "3.json"))
    # idbmountctl: visible once it returned; new stores and clients too.
    ctl(p.data, "put", "alice/shop/orders", "4", '{"v": "ctl"}')
    assert json.loads(open(p.v(*STORE, "4.json")).read()) == {"v": "ctl"}
    ctl(p.data, "mkstore", "alice/crm/contacts")
    assert sorted(os.listdir(p.v("alice"))) == ["crm", "shop"]
    ctl(p.data, "client", "add", "bob")
    assert sorted(os.listdir(p.view)) == ["alice", "bob"]
    # A directory made or removed through the mount.
    os.mkdir(p.m("alice", "logs"))
    assert "logs" in os.listdir(p.v("alice"))
    os.rmdir(p.m("alice", "logs"))
    assert "logs" not in os.listdir(p.v("alice"))
    # An import.
    lines = "".join('{"key": %d, "value": {"imp": %d}}\n' % (k, k) for k in range(10, 20))
    ctl(p.data, "import", "alice/shop/orders", "-", input=lines)
    assert json.loads(open(p.v(*STORE, "15.json")).read()) == {"imp": 15}


def test_a_push_shows_in_the_view_when_answered(pair):
    # The view caches for a day: a push is answered only once the notifier
    # has dropped what the view's kernel held of the record (its name, also
    # as absent, and the directory's listing).
    p = pair()
    rec = p.v(*STORE, "9.json")
    for round_ in range(20):
        assert not os.path.exists(rec)
        assert os.listdir(p.v(*STORE)) == []
        p.push([put("a%d" % round_, 9, {"r": round_})])
        assert json.loads(open(rec).read()) == {"r": round_}
        assert os.listdir(p.v(*STORE)) == ["9.json"]
        p.push([put("b%d" % round_, 9, {"r": -round_})])
        assert json.loads(open(rec).read()) == {"r": -round_}
        p.push([{"id": "c%d" % round_, "db": "shop", "store": "orders", "key": 9,
                 "op": "delete"}])


def test_a_file_open_on_the_view_outlives_its_removal(pair):
    p = pair()
    with open(p.m(*STORE, "1.json"), "w") as f:
        f.write('{"v": "kept"}\n')
    with open(p.v(*STORE, "1.json")) as held:
        os.unlink(p.m(*STORE, "1.json"))
        assert not os.path.exists(p.v(*STORE, "1.json"))
        # Like a removed file on a local disk: still readable while open.
        assert held.read() == '{"v": "kept"}\n'
        # The mount forgot it; the view still holds it: the row stays.
    with open(p.m(*STORE, "1.json"), "w") as f:
        f.write('{"v": "new"}\n')
    assert open(p.v(*STORE, "1.json")).read() == '{"v": "new"}\n'


def writer(p, wid, rounds, log, errors):
    """Rewrites, creates, renames and deletes its own records through the
    mount; after each close() the view must show exactly what was written
    (never the value before it)."""
    try:
        for i in range(rounds):
            key = "w%d-%d" % (wid, i % 7)
            text = json.dumps({"w": wid, "i": i, "pad": "x" * (i % 50)}) + "\n"
            with open(p.m(*STORE, key + ".json"), "w") as f:
                f.write(text)
            with open(p.v(*STORE, key + ".json")) as f:
                seen = f.read()
            if seen != text:
                errors.append("stale after close: %s: %r, wrote %r" % (key, seen, text))
            if i % 5 == 4:
                os.unlink(p.m(*STORE, key + ".json"))
                if os.path.exists(p.v(*STORE, key + ".json")):
                    errors.append("removed, still on the view: " + key)
            if i % 11 == 10:
                tmp = p.m(*STORE, ".%s.tmp" % key)
                with open(tmp, "w") as f:
                    f.write(text)
                os.rename(tmp, p.m(*STORE, key + ".json"))
                with open(p.v(*STORE, key + ".json")) as f:
                    if f.read() != text:
                        errors.append("stale after rename: " + key)
            log.append(i)
    except Exception as e:  # reported by the test
        errors.append("writer %d: %r" % (wid, e))


def pusher(p, rounds, errors):
    try:
        for i in range(rounds):
            value = {"h": i, "pad": "y" * (i % 40)}
            p.push([put("p%d" % i, "h%d" % (i % 13), value)])
            with open(p.v(*STORE, "h%d.json" % (i % 13))) as f:
                if json.loads(f.read()) != value:
                    errors.append("stale after push %d" % i)
    except Exception as e:
        errors.append("pusher: %r" % e)


def reader(p, stop, errors, reads, stale):
    """Greps and reads the view while it changes: every record it reads is
    whole JSON, never empty, partial or a mix of two writes."""
    while not stop.is_set():
        r = subprocess.run(["grep", "-rc", "pad", p.view], capture_output=True, text=True)
        if r.returncode not in (0, 1):
            lines = [l for l in r.stderr.splitlines()
                     if "No such file" not in l and "Stale file handle" not in l]
            if lines:
                errors.append("grep: " + "\n".join(lines))
        try:
            names = os.listdir(p.v(*STORE))
        except OSError as e:
            errors.append("listdir: %r" % e)
            continue
        # Records only: a temp file (.name.tmp) is whatever its writer
        # has written so far, as on any file system.
        records = [n for n in names if n.endswith(".json")]
        for name in random.sample(records, min(len(records), 20)):
            try:
                with open(p.v(*STORE, name)) as f:
                    text = f.read()
            except FileNotFoundError:
                continue  # removed meanwhile
            except OSError as e:
                # A revision replaced between open and first read (see
                # fs_view.c): an error, never a mix.
                if e.errno != errno.ESTALE:
                    errors.append("read %s: %r" % (name, e))
                stale.append(1)
                continue
            reads.append(1)
            try:
                json.loads(text)
            except ValueError:
                errors.append("torn read of %s: %r" % (name, text))


def test_always_current_under_concurrency(pair):
    p = pair()
    errors, log, reads, stale = [], [], [], []
    stop = threading.Event()
    readers = [threading.Thread(target=reader, args=(p, stop, errors, reads, stale))
               for _ in range(2)]
    writers = [threading.Thread(target=writer, args=(p, w, 400, log, errors)) for w in range(3)]
    writers.append(threading.Thread(target=pusher, args=(p, 400, errors)))
    for t in readers + writers:
        t.start()
    for t in writers:
        t.join()
    stop.set()
    for t in readers:
        t.join()
    assert errors == []
    assert len(log) == 3 * 400 and len(reads) > 100
    assert len(stale) < len(reads) / 10, (len(stale), len(reads))
    # The end state is the same on both.
    assert tree(p.view) == tree(p.mnt)


@pytest.mark.parametrize("how", ["sigterm", "unmount-mount", "unmount-view"])
def test_both_mounts_go_away_together(pair, how):
    p = pair()
    proc = p.daemon.proc
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
    else:
        subprocess.run(["fusermount3", "-u", p.mnt if how == "unmount-mount" else p.view],
                       check=True)
    assert proc.wait(timeout=30) == 0, p.daemon.stderr()
    p.daemon.proc = None
    p.daemon.log.close()
    assert not is_mounted(p.mnt) and not is_mounted(p.view)


def test_a_killed_daemon_leaves_neither_mount_hung(pair):
    p = pair()
    with open(p.m(*STORE, "1.json"), "w") as f:
        f.write('{"v": 1}\n')
    p.daemon.proc.send_signal(signal.SIGKILL)
    p.daemon.proc.wait(timeout=30)
    p.daemon.proc = None
    p.daemon.log.close()
    wait_for("both mounts cleared", lambda: not is_mounted(p.mnt) and not is_mounted(p.view))
    # And both come back.
    p.start()
    assert open(p.v(*STORE, "1.json")).read() == '{"v": 1}\n'


def test_a_start_clears_a_dead_view(tmp_path):
    """Without its watchdog, a killed daemon leaves both mounts dead; the
    next start clears both from what the lock file recorded."""
    p = Pair(tmp_path).start()
    watchdog = None
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                args = f.read().split(b"\0")
        except OSError:
            continue
        if args[1:3] == [b"--watchdog", b"%d" % p.daemon.proc.pid]:
            watchdog = int(pid)
    assert watchdog
    os.kill(watchdog, signal.SIGKILL)
    p.daemon.proc.send_signal(signal.SIGKILL)
    p.daemon.proc.wait(timeout=30)
    p.daemon.log.close()
    assert is_mounted(p.mnt) and is_mounted(p.view)
    p.daemon.start()
    try:
        wait_for("the new view", lambda: is_mounted(p.view))
        assert "cleared the mount %s of pid" % p.view in p.daemon.stderr()
        assert os.listdir(p.v("alice")) == ["shop"]
    finally:
        stop_cleanly(p.daemon)
        unmount(p.view)


def test_the_view_alone(tmp_path):
    """A machine that only analyses: the daemon serves the view and HTTP,
    no read-write mount."""
    data, view = str(tmp_path / "data"), str(tmp_path / "view")
    token = ctl(data, "client", "add", "alice").stdout.strip()
    ctl(data, "mkstore", "alice/shop/orders")
    d = Daemon(data, view, ["view_only"])
    d.start()
    try:
        c = http.client.HTTPConnection("127.0.0.1", d.port(), timeout=60)
        c.request("POST", "/v1/push", json.dumps({"mutations": [put("a", 1, {"v": 1})]}),
                  {"Authorization": "Bearer " + token, "Content-Type": "application/json"})
        assert c.getresponse().status == 200
        assert json.loads(open(os.path.join(view, *STORE, "1.json")).read()) == {"v": 1}
        r = sh("echo '{}' > %s/2.json" % os.path.join(view, *STORE), check=False)
        assert "Read-only file system" in r.stderr
        with open("/proc/self/mountinfo") as f:
            line = [l for l in f if l.split()[4] == view][-1]
        assert line.split()[5].startswith("ro")
    finally:
        stop_cleanly(d)


@pytest.mark.parametrize("args,message", [
    (["-o", "view_only", "--view", "V", "M"], "no view= too"),
    (["-o", "view_only"], "missing MOUNTPOINT"),
    ([], "missing MOUNTPOINT"),
    (["--view", "M", "M"], "a mount point of its own"),
    (["-o", "view="], "want a directory"),
])
def test_bad_view_arguments(tmp_path, args, message):
    args = [a.replace("V", str(tmp_path / "v")).replace("M", str(tmp_path / "m"))
            if len(a) == 1 else a for a in args]
    r = subprocess.run([os.environ.get("IDBMOUNT_BIN", "build/idbmount"), "-f", "--data",
                        str(tmp_path / "data"), *args], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2 and message in r.stderr, r.stderr
