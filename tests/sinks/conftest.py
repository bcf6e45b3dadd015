"""Fixtures for the sink tests: a real idbmount daemon with a config file,
real files, real HTTP on loopback.

`sinks` gives a fresh data directory, a mountpoint and a client `alice`;
`sinks.start(config_text)` writes the config file and starts the daemon in
the foreground. Changes are made with the real idbmountctl (put, import),
whose writes go to the same store the daemon ships from.
"""
import json
import os
import signal
import subprocess
import time

import pytest

IDBMOUNT = os.environ.get("IDBMOUNT_BIN", "build/idbmount")
IDBMOUNTCTL = os.environ.get("IDBMOUNTCTL_BIN", "build/idbmountctl")


def is_mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == path for line in f)


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


class Sinks:
    def __init__(self, root):
        self.root = root
        self.data = str(root / "data")
        self.mnt = str(root / "mnt")
        self.config = str(root / "idbmount.ini")
        self.log_path = str(root / "daemon.stderr")
        self.proc = None
        self.log = None
        os.makedirs(self.mnt, exist_ok=True)

    # ---- the daemon ----------------------------------------------------
    def write_config(self, text):
        with open(self.config, "w") as f:
            f.write(text)

    def start(self, config_text=None, wait_mount=True):
        if config_text is not None:
            self.write_config(config_text)
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [IDBMOUNT, "-f", "--data", self.data, "--config", self.config,
             self.mnt], stdout=self.log, stderr=self.log,
            stdin=subprocess.DEVNULL)
        if wait_mount:
            deadline = time.monotonic() + 20
            while not is_mounted(self.mnt):
                if self.proc.poll() is not None:
                    raise RuntimeError("idbmount exited with %d: %s" %
                                       (self.proc.returncode, self.stderr()))
                if time.monotonic() > deadline:
                    raise RuntimeError("idbmount did not mount: " + self.stderr())
                time.sleep(0.01)
        return self

    def stderr(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")

    def stop(self):
        """Unmounts as a user does; the daemon must exit cleanly (0)."""
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
        """SIGKILL: the crash case."""
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.proc = None
        self.log.close()
        unmount(self.mnt)

    # ---- idbmountctl ---------------------------------------------------
    def ctl(self, *args, check=True, input=None):
        p = subprocess.run([IDBMOUNTCTL, "--data", self.data, *args],
                           capture_output=True, text=True, input=input,
                           timeout=300)
        if check and p.returncode != 0:
            raise AssertionError("idbmountctl %s failed (%d): %s" %
                                 (" ".join(args), p.returncode, p.stderr))
        return p

    def put(self, path, key, value):
        self.ctl("put", path, json.dumps(key), json.dumps(value))

    def import_lines(self, path, records):
        text = "".join(json.dumps({"key": k, "value": v}) + "\n"
                       for k, v in records)
        self.ctl("import", path, "-", input=text)

    def log_lines(self, since=0):
        """The change lines as idbmountctl log renders them."""
        return self.ctl("log", "--since", str(since)).stdout.splitlines()

    def status(self):
        return json.loads(self.ctl("status", "--json").stdout)

    def sink_status(self, name):
        for s in self.status()["sinks"]:
            if s["name"] == name:
                return s
        raise AssertionError("no sink %s in status" % name)

    def wait_caught_up(self, name, timeout=60):
        last = self.status()["last_seq"]
        return wait_for("sink %s to deliver up to seq %d" % (name, last),
                        lambda: self.sink_status(name)["cursor"] >= last,
                        timeout=timeout)


def batch_files(directory, recursive=False):
    """Visible batch files (not hidden, not flags), sorted by name."""
    out = []
    for dirpath, dirnames, filenames in os.walk(directory):
        for n in filenames:
            if n.startswith(".") or n.startswith("_"):
                continue
            out.append(os.path.join(dirpath, n))
        if not recursive:
            break
    return sorted(out, key=os.path.basename)


def read_lines(paths):
    lines = []
    for p in paths:
        with open(p, "rb") as f:
            data = f.read()
        assert data, "empty batch file " + p
        assert data.endswith(b"\n"), "batch file without a final newline: " + p
        for line in data.decode("utf-8").split("\n")[:-1]:
            assert line, "blank line in " + p
            lines.append(line)
    return lines


@pytest.fixture
def sinks(tmp_path):
    assert os.path.exists("/dev/fuse"), \
        "/dev/fuse is missing: run mount-helpers/install-deps.sh --test"
    s = Sinks(tmp_path)
    s.token = s.ctl("client", "add", "alice").stdout.strip()  # for HTTP tests
    yield s
    rc = s.stop() if s.proc else 0
    unmount(s.mnt)
    assert rc == 0, "idbmount exited with %d:\n%s" % (rc, s.stderr())
