"""Fixtures for the operations tests (backup, restore, upgrades): real
idbmount daemons on real mounts, real HTTP, real files.

`ops.node(name, config=None)` gives a daemon (not started) with a data
directory and a mountpoint of its own under the test's directory; every
node started is stopped cleanly at the end.
"""
import http.client
import importlib.util
import json
import os

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, os.path.join(HERE, "..", path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fs_conftest = _load("fs_conftest", "fs/conftest.py")
sync_conftest = _load("sync_conftest", "sync/conftest.py")
sinks_conftest = _load("sinks_conftest", "sinks/conftest.py")

IDBMOUNT = fs_conftest.IDBMOUNT
IDBMOUNTCTL = fs_conftest.IDBMOUNTCTL
wait_for = fs_conftest.wait_for
Api = sync_conftest.Api
batch_files = sinks_conftest.batch_files
read_lines = sinks_conftest.read_lines


class Node(fs_conftest.Daemon):
    """One data directory and the daemon that serves it."""

    def __init__(self, root, config=None):
        os.makedirs(root, exist_ok=True)
        super().__init__(os.path.join(root, "data"), os.path.join(root, "mnt"),
                         args=["--config", config] if config else [])

    def ctl(self, *args, check=True, input=None):
        return fs_conftest.ctl(self.data, *args, check=check, input=input, timeout=300)

    def status(self):
        return json.loads(self.ctl("status", "--json").stdout)

    def sink_status(self, name):
        return next(s for s in self.status()["sinks"] if s["name"] == name)

    def wait_caught_up(self, name, timeout=120):
        last = self.status()["last_seq"]
        return wait_for("sink %s to deliver up to seq %d" % (name, last),
                        lambda: self.sink_status(name)["cursor"] >= last,
                        timeout=timeout)

    def import_lines(self, path, records):
        text = "".join(json.dumps({"key": k, "value": v}) + "\n" for k, v in records)
        self.ctl("import", path, "-", input=text)

    def api(self, token):
        return Api(self.port(), token)


def pull_all(api, page=1000):
    """Every change a client's pull gives from the start, and the epoch."""
    changes, since = [], 0
    while True:
        r = api.pull(since, limit=page)
        changes += r["changes"]
        since = r["checkpoint"]
        if not r["more"]:
            return changes, r["epoch"]


class Ops:
    def __init__(self, tmp_path):
        self.tmp = tmp_path
        self.nodes = []

    def node(self, name, config=None):
        n = Node(str(self.tmp / name), config)
        self.nodes.append(n)
        return n


@pytest.fixture
def ops(tmp_path):
    assert os.path.exists("/dev/fuse"), \
        "/dev/fuse is missing: run mount-helpers/install-deps.sh --test"
    o = Ops(tmp_path)
    yield o
    for n in o.nodes:
        fs_conftest.stop_cleanly(n)
