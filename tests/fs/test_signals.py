"""A signal at any moment stops the daemon without hanging it or its mount,
and loses no write that close() acknowledged.

The load is the one that can hang a stop done in the wrong order: three
processes creating files in a store as fast as they can (each create holds
the directory's lock in the kernel until the daemon answers), HTTP pushes
writing into the same store (each makes the notifier invalidate names in
that directory, which needs the same lock), and a SIGTERM or SIGKILL every
0.3-0.8 s, with a restart after each.
"""
import errno
import http.client
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import Daemon, ctl, is_mounted, wait_for

# IDBMOUNT_STRESS scales every stress test's size (tests/run-all.sh runs the
# sanitizer pass at a quarter: the same paths, fewer rounds).
ROUNDS = max(5, round(50 * float(os.environ.get("IDBMOUNT_STRESS", "1"))))
STOP_DEADLINE = 30  # seconds: a hang, not a slow stop, fails

# Each creator writes files until told to stop and logs every file whose
# close() returned 0, after it returned: those must all be on disk.
CREATOR = r"""
import os, sys
store, tag, log = sys.argv[1], sys.argv[2], sys.argv[3]
i = 0
with open(log, "a") as done:
    while not os.path.exists(log + ".stop"):
        name = "%s-%d.json" % (tag, i)
        text = '{"tag": "%s", "i": %d}\n' % (tag, i)
        try:
            f = open(os.path.join(store, name), "w")
            f.write(text)
            f.close()
        except OSError:
            pass
        else:
            done.write(name + "\n")
            done.flush()
        i += 1
"""


def pusher(port, token, tag, stop):
    i = 0
    while not stop.is_set():
        muts = [{"id": "%s-%d-%d" % (tag, i, j), "db": "shop", "store": "orders",
                 "key": "%s-%d-%d" % (tag, i, j), "op": "put", "value": {"j": j}}
                for j in range(20)]
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            c.request("POST", "/v1/push", json.dumps({"mutations": muts}),
                      {"Authorization": "Bearer " + token,
                       "Content-Type": "application/json"})
            c.getresponse().read()
            c.close()
        except (OSError, http.client.HTTPException):
            time.sleep(0.01)
        i += 1


def stuck_threads(pid):
    """Kernel stacks of the daemon's threads in uninterruptible sleep."""
    out = []
    try:
        for tid in os.listdir("/proc/%d/task" % pid):
            with open("/proc/%d/task/%s/stat" % (pid, tid)) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
            if state == "D":
                with open("/proc/%d/task/%s/stack" % (pid, tid)) as f:
                    out.append(tid + ": " + f.read().replace("\n", " | "))
    except OSError:
        pass
    return out


def free_hung_mount(mnt):
    """Frees a hung mount so that the test run can go on after a failure."""
    subprocess.run(["umount", "-f", "-l", mnt], check=False, stderr=subprocess.DEVNULL)


class Load:
    """Round `r`'s load on a started daemon: three processes creating files
    in the store (each logs what it closed into a log of its own, appended
    to `logs`), and pushes into the same store."""

    def __init__(self, tmp_path, daemon, token, r, logs):
        store = os.path.join(daemon.mnt, "alice", "shop", "orders")
        os.makedirs(store, exist_ok=True)
        self.stop = threading.Event()
        self.push = threading.Thread(target=pusher,
                                     args=(daemon.port(), token, "h%d" % r, self.stop),
                                     daemon=True)
        self.push.start()
        self.logs = []
        self.creators = []
        for w in range(3):
            log = str(tmp_path / ("closed-%d-%d.log" % (r, w)))
            self.logs.append(log)
            self.creators.append(subprocess.Popen(
                [sys.executable, "-c", CREATOR, store, "c%d-%d" % (r, w), log]))
        logs.extend(self.logs)

    def close(self):
        """Stops whatever still runs (a test's finally, also on failure)."""
        self.stop.set()
        for log in self.logs:
            open(log + ".stop", "w").close()
        for c in self.creators:
            if c.poll() is None:
                c.kill()
                c.wait()

    def end(self, r, mnt, what):
        """Stops the load; fails if a writer or a push hung on the mount."""
        self.stop.set()
        for log in self.logs:
            open(log + ".stop", "w").close()
        for c in self.creators:
            try:
                c.wait(timeout=STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                free_hung_mount(mnt)
                c.kill()
                raise AssertionError("round %d: a writer hung on the mount after %s" %
                                     (r, what))
        self.push.join(timeout=STOP_DEADLINE)
        assert not self.push.is_alive(), "round %d: a push hung" % r


def run_rounds(tmp_path, sig):
    data, mnt = str(tmp_path / "data"), str(tmp_path / "mnt")
    token = ctl(data, "client", "add", "alice").stdout.strip()
    daemon = Daemon(data, mnt)
    logs = []
    for r in range(ROUNDS):
        daemon.start()
        load = Load(tmp_path, daemon, token, r, logs)
        try:
            time.sleep(random.uniform(0.3, 0.8))
            proc = daemon.proc
            proc.send_signal(sig)
            try:
                proc.wait(timeout=STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                stacks = stuck_threads(proc.pid)
                free_hung_mount(mnt)
                proc.kill()
                proc.wait()
                raise AssertionError("round %d: the daemon did not stop within %d s after %s; "
                                     "threads in D state: %s\n%s" %
                                     (r, STOP_DEADLINE, signal.Signals(sig).name, stacks,
                                      daemon.stderr()[-3000:]))
            # The writers must come back too: a hung mount would keep them.
            load.end(r, mnt, signal.Signals(sig).name)
        finally:
            load.close()
        daemon.proc = None
        daemon.log.close()
        if sig == signal.SIGTERM:
            assert proc.returncode == 0, daemon.stderr()[-3000:]
        # Gone with the daemon (its watchdog clears it after a SIGKILL).
        deadline = time.monotonic() + STOP_DEADLINE
        while is_mounted(mnt):
            assert time.monotonic() < deadline, "round %d: the mount stayed" % r
            time.sleep(0.02)
    return daemon, logs


def check_every_close_is_on_disk(daemon, logs):
    daemon.start()
    try:
        store = os.path.join(daemon.mnt, "alice", "shop", "orders")
        on_disk = set(os.listdir(store))
        closed = 0
        for log in logs:
            with open(log) as f:
                names = f.read().split()
            closed += len(names)
            for name in names:
                assert name in on_disk, "%s: close() returned 0 but it is gone" % name
                tag, i = name[:-len(".json")].rsplit("-", 1)
                with open(os.path.join(store, name)) as f:
                    assert json.loads(f.read()) == {"tag": tag, "i": int(i)}, name
        assert closed > ROUNDS  # the writers did write
    finally:
        daemon.stop()


def test_sigterm_under_load_never_hangs(tmp_path):
    daemon, logs = run_rounds(tmp_path, signal.SIGTERM)
    check_every_close_is_on_disk(daemon, logs)


def test_sigkill_under_load_never_hangs(tmp_path):
    daemon, logs = run_rounds(tmp_path, signal.SIGKILL)
    check_every_close_is_on_disk(daemon, logs)
    # The watchdog said what it did, each time.
    assert "cleared its mount" in daemon.stderr()


def process_alive(pid):
    """False once `pid` is gone or a zombie (a killed process whose last
    thread may still be stuck in the kernel)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except OSError:
        return False


def watchdog_of(daemon):
    """The pid of the daemon's watchdog (`idbmount --watchdog DAEMON_PID ...`)."""
    def find():
        for pid in os.listdir("/proc"):
            if not pid.isdigit():
                continue
            try:
                with open("/proc/%s/cmdline" % pid, "rb") as f:
                    args = f.read().split(b"\0")
            except OSError:
                continue
            if args[1:3] == [b"--watchdog", b"%d" % daemon.proc.pid]:
                return int(pid)
        return None
    return wait_for("the watchdog", find, timeout=10)


def test_start_clears_what_a_killed_daemon_and_watchdog_left(tmp_path):
    """Without its watchdog (killed as well, say by `pkill -9 idbmount`), a
    killed daemon leaves its mount dead or hung, and may be stuck dying.
    The next start on the data directory clears that mount from what the
    lock file recorded, lets the old process die, and mounts."""
    data, mnt = str(tmp_path / "data"), str(tmp_path / "mnt")
    token = ctl(data, "client", "add", "alice").stdout.strip()
    daemon = Daemon(data, mnt)
    logs = []
    for r in range(10):
        daemon.start()
        store = os.path.join(mnt, "alice", "shop", "orders")
        load = Load(tmp_path, daemon, token, r, logs)
        try:
            time.sleep(random.uniform(0.3, 0.8))
            os.kill(watchdog_of(daemon), signal.SIGKILL)
            old = daemon.proc
            old.send_signal(signal.SIGKILL)
            daemon.log.close()
            wait_for("the killed daemon to be dying", lambda: not process_alive(old.pid))
            # The old process may be stuck dying now; its mount is dead or hung.
            assert is_mounted(mnt)
            daemon.start()
            try:
                old.wait(timeout=STOP_DEADLINE)
            except subprocess.TimeoutExpired:
                free_hung_mount(mnt)
                raise AssertionError("round %d: the killed daemon is still stuck after a new "
                                     "start: %s" % (r, stuck_threads(old.pid)))
            load.end(r, mnt, "a start after SIGKILL")
        finally:
            load.close()
        assert "cleared the mount %s of pid %d" % (mnt, old.pid) in daemon.stderr()
        # The new daemon serves: a write through its mount works.
        with open(os.path.join(store, "after-%d.json" % r), "w") as f:
            f.write('{"round": %d}\n' % r)
        assert daemon.stop() == 0
    check_every_close_is_on_disk(daemon, logs)


def recorded_pid(data):
    with open(os.path.join(data, "idbmount.lock")) as f:
        for line in f:
            if line.startswith("pid "):
                return int(line.split()[1])
    return None


def test_sighup_reopens_the_log_for_logrotate(tmp_path):
    """Detached, the daemon logs to DATA/idbmount.log; logrotate moves the
    file and sends SIGHUP, and the daemon goes on in a new file (0600).
    SIGTERM then stops it and its mount."""
    data, mnt = str(tmp_path / "data"), str(tmp_path / "mnt")
    os.makedirs(mnt)
    ctl(data, "client", "add", "alice")
    subprocess.run([os.environ.get("IDBMOUNT_BIN", "build/idbmount"), "--data", data,
                    "--listen", "none", mnt], check=True, timeout=30)
    log = os.path.join(data, "idbmount.log")
    pid = wait_for("the daemon's pid", lambda: recorded_pid(data))
    try:
        os.rename(log, log + ".1")
        os.kill(pid, signal.SIGHUP)
        wait_for("a new log", lambda: os.path.exists(log))
        assert os.stat(log).st_mode & 0o777 == 0o600
        wait_for("the reopen message",
                 lambda: "SIGHUP: reopened " + log in open(log).read())
        # Still serving, and logging into the new file.
        os.mkdir(os.path.join(mnt, "alice", "crm"))
        assert os.listdir(os.path.join(mnt, "alice")) == ["crm"]
        os.kill(pid, signal.SIGTERM)
        wait_for("the daemon to stop", lambda: not process_alive(pid))
        wait_for("the mount to go", lambda: not is_mounted(mnt))
        assert "Terminated: stopping" in open(log).read()
        assert "SIGHUP" not in open(log + ".1").read()
    finally:
        if is_mounted(mnt):
            subprocess.run(["fusermount3", "-u", "-z", mnt], check=False)


def test_sighup_in_the_foreground_stops(tmp_path):
    """With -f there is no log file: SIGHUP is the terminal going away, and
    the daemon stops cleanly, as it always did."""
    data, mnt = str(tmp_path / "data"), str(tmp_path / "mnt")
    ctl(data, "client", "add", "alice")
    daemon = Daemon(data, mnt).start()
    daemon.proc.send_signal(signal.SIGHUP)
    assert daemon.proc.wait(timeout=STOP_DEADLINE) == 0
    daemon.proc = None
    daemon.log.close()
    assert "Hangup: stopping" in daemon.stderr()
    wait_for("the mount to go", lambda: not is_mounted(mnt))


def test_the_logrotate_snippet_rotates_a_running_daemons_log(tmp_path):
    """mount-helpers/idbmount.logrotate, run by the real logrotate on a
    detached daemon: the log is rotated, the daemon goes on writing into a
    new 0600 file, and it still serves."""
    data, mnt = str(tmp_path / "data"), str(tmp_path / "mnt")
    os.makedirs(mnt)
    ctl(data, "client", "add", "alice")
    bin_dir = os.path.dirname(os.path.abspath(os.environ.get("IDBMOUNT_BIN", "build/idbmount")))
    subprocess.run([os.path.join(bin_dir, "idbmount"), "--data", data, "--listen", "127.0.0.1:0",
                    mnt], check=True, timeout=30)
    pid = wait_for("the daemon's pid", lambda: recorded_pid(data))
    # Something to rotate (the snippet skips an empty log).
    wait_for("the first line", lambda: os.path.getsize(os.path.join(data, "idbmount.log")))
    source = os.path.join(os.environ.get("IDBMOUNT_SOURCE_DIR", "."), "mount-helpers",
                          "idbmount.logrotate")
    config = tmp_path / "logrotate.conf"
    config.write_text(open(source).read().replace("/var/lib/idbmount", data))
    try:
        env = dict(os.environ, PATH=bin_dir + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
        r = subprocess.run(["logrotate", "-f", "-s", str(tmp_path / "state"), str(config)],
                           capture_output=True, text=True, timeout=60, env=env)
        assert r.returncode == 0, r.stderr
        log = os.path.join(data, "idbmount.log")
        assert os.path.exists(log + ".1")
        wait_for("the reopen message",
                 lambda: "SIGHUP: reopened" in open(log).read())
        assert os.stat(log).st_mode & 0o777 == 0o600
        assert process_alive(pid)
        os.mkdir(os.path.join(mnt, "alice", "crm"))
        assert "crm" in os.listdir(os.path.join(mnt, "alice"))
    finally:
        subprocess.run(["fusermount3", "-u", mnt], check=False)
        wait_for("the daemon to stop", lambda: not process_alive(pid))


def test_sigterm_with_files_open_frees_their_handles(tmp_path):
    """A file still open when the daemon stops (a RELEASE on its way at
    unmount, or SIGTERM) leaves its handle behind: the daemon frees every
    one and exits 0. In the sanitizer build a handle left is a leak, and the
    exit status says so; many files are held, as a stale copy of one
    handle's address in a buffer would hide that one from the leak check."""
    data, mnt = str(tmp_path / "data"), str(tmp_path / "mnt")
    ctl(data, "client", "add", "alice")
    # cache=never: the kernel opens and releases each file (with the
    # default cache=always it opens none).
    daemon = Daemon(data, mnt, options=["cache=never"]).start()
    store = os.path.join(mnt, "alice", "shop", "orders")
    os.makedirs(store)
    held = []
    try:
        for i in range(40):
            path = os.path.join(store, "%d.json" % i)
            with open(path, "w") as f:
                f.write('{"item": "tea"}\n')
            reader = open(path)
            held.append(reader)
            assert json.loads(reader.read()) == {"item": "tea"}
            held.append(open(path, "r+"))
        daemon.proc.send_signal(signal.SIGTERM)
        rc = daemon.proc.wait(timeout=STOP_DEADLINE)
        daemon.proc = None
        daemon.log.close()
        assert rc == 0, daemon.stderr()
        assert "Sanitizer" not in daemon.stderr(), daemon.stderr()
    finally:
        for f in held:
            try:
                f.close()
            except OSError:
                pass
        if is_mounted(mnt):
            subprocess.run(["fusermount3", "-u", "-z", mnt], check=False)


def start_in(cwd, *args):
    """Starts the daemon in the foreground in directory `cwd`, its output
    in cwd/log."""
    log = open(os.path.join(cwd, "log"), "ab")
    return subprocess.Popen([os.environ.get("IDBMOUNT_BIN", "build/idbmount"), "-f",
                             "--listen", "none"] + list(args),
                            cwd=cwd, stdout=log, stderr=log)


def test_relative_mount_points_are_unmounted_when_the_daemon_stops(tmp_path):
    """Mount points named relative to where the daemon started: libfuse
    unmounts by the name it mounted, and after the daemon had left that
    directory a SIGTERM left both mounts dead ("failed to unmount mnt:
    Invalid argument")."""
    mnt, view = str(tmp_path / "mnt"), str(tmp_path / "view")
    os.makedirs(mnt)
    os.makedirs(view)
    for stop in ("SIGTERM", "fusermount3 -u"):
        proc = start_in(tmp_path, "--data", "data", "--view", "view", "mnt")
        try:
            wait_for("both mounts", lambda: is_mounted(mnt) and is_mounted(view))
            if stop == "SIGTERM":
                proc.send_signal(signal.SIGTERM)
            else:
                subprocess.run(["fusermount3", "-u", mnt], check=True)
            assert proc.wait(timeout=STOP_DEADLINE) == 0, stop
            with open(tmp_path / "log") as f:
                log = f.read()
            assert "failed to unmount" not in log, log
            assert not is_mounted(mnt) and not is_mounted(view), stop
            assert os.listdir(mnt) == [] and os.listdir(view) == []
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            free_hung_mount(mnt)
            free_hung_mount(view)


def test_a_dead_mount_in_the_way_is_named_with_the_way_out(tmp_path):
    """A dead mount another data directory left (its daemon and watchdog
    killed) is not this start's to clear: the start fails and says which
    command frees the mount point."""
    mnt = str(tmp_path / "mnt")
    os.makedirs(mnt)
    first = Daemon(str(tmp_path / "first"), mnt)
    first.start()
    os.kill(watchdog_of(first), signal.SIGKILL)
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait(timeout=STOP_DEADLINE)
    first.log.close()
    try:
        with pytest.raises(OSError) as dead:
            os.stat(mnt)
        assert dead.value.errno == errno.ENOTCONN
        proc = start_in(tmp_path, "--data", "second", mnt)
        assert proc.wait(timeout=STOP_DEADLINE) == 1
        with open(tmp_path / "log") as f:
            log = f.read()
        assert ("idbmount: %s: a dead mount is still there; unmount it first "
                "(fusermount3 -u %s)" % (mnt, mnt)) in log, log
    finally:
        free_hung_mount(mnt)
    assert not is_mounted(mnt)
