"""Fixtures for the sink tests: a real idbmount daemon with a config file,
real files, real HTTP on loopback.

`sinks` gives a fresh data directory, a mountpoint and a client `alice`;
`sinks.start(config_text)` writes the config file and starts the daemon in
the foreground. Changes are made with the real idbmountctl (put, import),
whose writes go to the same store the daemon ships from.
"""
import importlib.util
import json
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "fs_conftest", os.path.join(HERE, "..", "fs", "conftest.py"))
fs_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fs_conftest)

IDBMOUNT = fs_conftest.IDBMOUNT
IDBMOUNTCTL = fs_conftest.IDBMOUNTCTL
is_mounted = fs_conftest.is_mounted
wait_for = fs_conftest.wait_for


class Sinks(fs_conftest.Daemon):
    """tests/fs's Daemon, started with a config file of sinks."""

    def __init__(self, root):
        self.root = root
        self.config = str(root / "idbmount.ini")
        super().__init__(root / "data", root / "mnt", args=["--config", self.config])
        os.makedirs(self.mnt, exist_ok=True)

    # ---- the daemon ----------------------------------------------------
    def write_config(self, text):
        with open(self.config, "w") as f:
            f.write(text)

    def start(self, config_text=None):
        if config_text is not None:
            self.write_config(config_text)
        return super().start()

    # ---- idbmountctl ---------------------------------------------------
    def ctl(self, *args, check=True, input=None):
        return fs_conftest.ctl(self.data, *args, check=check, input=input, timeout=300)

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
    fs_conftest.stop_cleanly(s)
