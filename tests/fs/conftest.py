"""Fixtures for the mount tests: a real idbmount daemon on a real FUSE mount.

Each test that asks for `idb` gets a fresh data directory and mountpoint, a
daemon running in the foreground, and a client `alice` with a database
`shop` and a store `orders`. Tests drive the mount with real shell tools
(subprocess), never with our own code.

The binaries come from ctest's environment (IDBMOUNT_BIN, IDBMOUNTCTL_BIN);
run by hand with those set, e.g.
  IDBMOUNT_BIN=build/idbmount IDBMOUNTCTL_BIN=build/idbmountctl python3 -m pytest tests/fs

tests/sync and tests/sinks load this file for their daemons too (Daemon,
ctl, wait_for), so that there is one way to start, stop and wait.
"""
import contextlib
import fcntl
import json
import os
import re
import signal
import subprocess
import time

import pytest

IDBMOUNT = os.environ.get("IDBMOUNT_BIN", "build/idbmount")
IDBMOUNTCTL = os.environ.get("IDBMOUNTCTL_BIN", "build/idbmountctl")


def mount_device(path):
    """The device (MAJOR:MINOR) of the topmost mount at `path`, or None.
    Reads /proc/self/mountinfo only: a hung mount cannot hang the test."""
    path = os.path.join(os.path.realpath(os.path.dirname(os.path.abspath(path))),
                        os.path.basename(os.path.abspath(path)))
    device = None
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4].replace("\\040", " ") == path:
                device = fields[2]
    return device


def is_mounted(path):
    return mount_device(path) is not None


def unmount(path):
    if is_mounted(path):
        subprocess.run(["fusermount3", "-u", "-z", path], check=False,
                       stderr=subprocess.DEVNULL)


def wait_for(what, check, timeout=30, interval=0.02):
    """Polls `check` until it returns a true value; fails after `timeout`
    seconds with `what` (a generous deadline, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


def mount_entry(path):
    """The (source, fstype, options) of the mount at `path`, or None."""
    p = subprocess.run(["findmnt", "-J", "-o", "SOURCE,FSTYPE,OPTIONS",
                        "--mountpoint", path], capture_output=True, text=True)
    if p.returncode != 0:
        return None
    fs = json.loads(p.stdout)["filesystems"][-1]
    return fs["source"], fs["fstype"], fs["options"].split(",")


def daemon_pids(mnt):
    """Pids of the idbmount processes serving `mnt` (its last argument)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                args = f.read().split(b"\0")[:-1]
        except OSError:
            continue
        # The daemon's watchdog (`idbmount --watchdog PID DEV PATH`) is
        # not a daemon.
        if args and os.path.basename(args[0]) == b"idbmount" and \
                args[-1] == os.fsencode(mnt) and b"--watchdog" not in args:
            pids.append(int(entry))
    # The daemon starts its watchdog by fork and exec: until the exec, the
    # child still shows the daemon's command line. A child of a daemon in
    # the list is that, not a second daemon.
    return [p for p in pids if parent_of(p) not in pids]


def parent_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            # The name (field 2) may hold spaces and parentheses: the
            # parent pid is the second field after its last ')'.
            return int(f.read().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return None


def wait_gone(pids, timeout=20):
    """Waits for the processes `pids` to end (a zombie counts as ended);
    returns those still running after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pids = [p for p in pids if os.path.exists("/proc/%d" % p) and
                not open("/proc/%d/stat" % p).read().split(") ")[-1].startswith("Z")]
        if not pids:
            return []
        time.sleep(0.05)
    return pids


# /sbin/mount.fuse.idbmount (on Debian 12 the same file as
# /usr/sbin/mount.fuse.idbmount) is one for the whole machine: the mount(8)
# tests of test_mount_helper.py link the source tree's helper there, and
# test_package.py installs the Debian package, whose link it is. Each holds
# this lock while the link is theirs, so that two test runs (two build
# directories, two checkouts) never take it from each other.
MOUNT_HELPER_LINK_LOCK = os.path.join(
    "/run/lock" if os.path.isdir("/run/lock") else "/tmp", "idbmount-mount-helper.lock")


@contextlib.contextmanager
def mount_helper_link_lock(timeout=900):
    """Holds MOUNT_HELPER_LINK_LOCK (a flock) for the `with` block; waits
    for another run that holds it, up to `timeout` seconds."""
    fd = os.open(MOUNT_HELPER_LINK_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise AssertionError("another test run held %s for %d s" %
                                         (MOUNT_HELPER_LINK_LOCK, timeout))
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)


def ctl(data, *args, check=True, input=None, timeout=120):
    """Runs idbmountctl on data directory `data`; fails unless it exits 0
    (with check)."""
    p = subprocess.run([IDBMOUNTCTL, "--data", data, *args],
                       capture_output=True, text=True, input=input,
                       timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("idbmountctl %s failed (%d): %s" %
                             (" ".join(args), p.returncode, p.stderr))
    return p


class Daemon:
    """One idbmount process serving `data` at `mnt`."""

    def __init__(self, data, mnt, options=(), args=()):
        self.data = str(data)
        self.mnt = str(mnt)
        self.options = list(options)
        # Extra daemon arguments (HTTP options for tests/sync). HTTP listens
        # on a port the kernel picks, so daemons of parallel test runs never
        # collide; port() reads it from the daemon's log.
        self.args = list(args)
        self.proc = None
        self.log_path = os.path.join(os.path.dirname(self.mnt), "daemon.stderr")

    def start(self, options=None):
        if options is not None:
            self.options = list(options)
        # A dead mount of an earlier daemon may be there (stat: ENOTCONN):
        # the daemon clears it.
        if not is_mounted(self.mnt):
            os.makedirs(self.mnt, exist_ok=True)
        args = [IDBMOUNT, "-f", "--data", self.data]
        if not any(a.startswith("--listen") for a in self.args):
            args += ["--listen", "127.0.0.1:0"]
        args += self.args
        for opt in self.options:
            args += ["-o", opt]
        args.append(self.mnt)
        self.log = open(self.log_path, "ab")
        self.log_start = self.log.tell()
        self.proc = subprocess.Popen(args, stdout=self.log, stderr=self.log,
                                     stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        # A dead mount of an earlier daemon may still be there: this one's
        # is up once the daemon has recorded it in the lock file.
        while not (is_mounted(self.mnt) and self.recorded()):
            if self.proc.poll() is not None:
                raise RuntimeError("idbmount exited with %d: %s" %
                                   (self.proc.returncode, self.stderr()))
            if time.monotonic() > deadline:
                raise RuntimeError("idbmount did not mount: " + self.stderr())
            time.sleep(0.02)
        return self

    def recorded(self):
        """True once the daemon wrote its pid into DATA/idbmount.lock,
        which it does right after mounting."""
        try:
            with open(os.path.join(self.data, "idbmount.lock")) as f:
                return ("pid %d\n" % self.proc.pid) in f.read()
        except OSError:
            return False

    def port(self):
        """The HTTP port, from the daemon's "serving ... (port N)" line."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                f.seek(self.log_start)
                text = f.read().decode(errors="replace")
            m = re.search(r"serving \S+ \(port (\d+)\)", text)
            if m:
                return int(m.group(1))
            time.sleep(0.02)
        raise RuntimeError("idbmount does not serve HTTP: " + self.stderr())

    def stderr(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        """Unmounts the way a user does; the daemon must exit cleanly."""
        if self.proc is None:
            return 0
        if is_mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", self.mnt], check=False)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.proc = None
        self.log.close()
        return rc

    def kill(self):
        """SIGKILL: the crash case. Leaves a dead mount to clean up."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        self.log.close()
        unmount(self.mnt)


class Idb:
    def __init__(self, tmp_path):
        self.root = tmp_path
        self.data = str(tmp_path / "data")
        self.mnt = str(tmp_path / "mnt")
        self.daemon = Daemon(self.data, self.mnt)

    def ctl(self, *args, check=True, input=None):
        return ctl(self.data, *args, check=check, input=input)

    def path(self, *parts):
        return os.path.join(self.mnt, *parts)

    @property
    def store(self):
        return self.path("alice", "shop", "orders")

    def changes(self, since=0):
        out = self.ctl("log", "--since", str(since)).stdout
        return [json.loads(line) for line in out.splitlines() if line]


def preload_faulty_disk(tmp_path, monkeypatch, **faults):
    """Builds tests/common/faulty_disk.c and preloads it into the daemons
    the test starts afterwards, with `faults` (SLOW_DISK_SYNC_MS=...,
    FAIL_DIR_SYNC=...) in their environment."""
    library = str(tmp_path / "faulty_disk.so")
    source = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "common",
                          "faulty_disk.c")
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", library, source, "-ldl"],
                   check=True)
    monkeypatch.setenv("LD_PRELOAD", library)
    for name, value in faults.items():
        monkeypatch.setenv(name, str(value))
    # A sanitizer's runtime must otherwise come first in the list.
    asan = os.environ.get("ASAN_OPTIONS")
    monkeypatch.setenv("ASAN_OPTIONS",
                       (asan + ":" if asan else "") + "verify_asan_link_order=0")


def sh(cmd, cwd=None, check=True, input=None, env=None):
    """Runs a shell command line; returns the CompletedProcess."""
    p = subprocess.run(cmd, shell=True, cwd=cwd, capture_output=True,
                       text=True, input=input, timeout=300, env=env)
    if check and p.returncode != 0:
        raise AssertionError("%r failed (%d):\n%s%s" %
                             (cmd, p.returncode, p.stdout, p.stderr))
    return p


def stop_cleanly(daemon):
    """A fixture's teardown: stops `daemon` if it still runs and fails
    unless it exited 0."""
    rc = daemon.stop() if daemon.proc else 0
    unmount(daemon.mnt)
    assert rc == 0, "idbmount exited with %d:\n%s" % (rc, daemon.stderr())


@pytest.fixture
def start_idb(tmp_path):
    """Returns start(options=()): what `idb` gives, with the daemon mounted
    with these -o options (for the tests of a mount option)."""
    assert os.path.exists("/dev/fuse"), \
        "/dev/fuse is missing: run mount-helpers/install-deps.sh --test"
    made = []

    def start(options=()):
        i = Idb(tmp_path)
        i.ctl("client", "add", "alice")
        made.append(i)
        i.daemon.start(options)
        os.makedirs(i.store)
        return i

    yield start
    for i in made:
        stop_cleanly(i.daemon)


@pytest.fixture
def idb(start_idb):
    return start_idb()
