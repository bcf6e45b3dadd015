"""Concurrent writers and crashes: no lost update, one change per commit."""
import json
import os
import random
import subprocess
import sys
import threading
import time

from conftest import sh

WRITES = 1000


def run_at_once(target, arg_tuples):
    """Calls target(*args) for each tuple, each on a thread of its own, all
    at once; returns when all have returned."""
    threads = [threading.Thread(target=target, args=args) for args in arg_tuples]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def writer(store, wid, shared, errors):
    """Writes WRITES revisions: its own record in place, and a shared record
    the way careful programs replace a file others write too (a temp file,
    then rename over it), alternately."""
    try:
        for i in range(WRITES):
            text = json.dumps({"writer": wid, "i": i}) + "\n"
            if i % 2:
                tmp = os.path.join(store, ".shared-%d.tmp" % wid)
                with open(tmp, "w") as f:
                    f.write(text)
                os.replace(tmp, os.path.join(store, "shared.json"))
                shared.append(1)
            else:
                with open(os.path.join(store, "w%d.json" % wid), "w") as f:
                    f.write(text)
    except Exception as e:  # reported by the main thread
        errors.append(e)


def test_four_concurrent_writers(idb):
    shared, errors = [], []
    run_at_once(writer, [(idb.store, w, shared, errors) for w in range(4)])
    assert errors == []
    changes = idb.changes()
    assert len(changes) == 4 * WRITES
    # One entry per committed write, in seq order, no seq reused.
    seqs = [c["seq"] for c in changes]
    assert seqs == sorted(set(seqs))
    for w in range(4):
        own = [c for c in changes if c["key"] == "w%d" % w]
        assert len(own) == WRITES // 2
        assert [c["rev"] for c in own] == list(range(1, WRITES // 2 + 1))
        last = json.loads(open(os.path.join(idb.store, "w%d.json" % w)).read())
        assert last == {"writer": w, "i": WRITES - 2}
    shared_changes = [c for c in changes if c["key"] == "shared"]
    assert len(shared_changes) == len(shared) == 2 * WRITES
    assert [c["rev"] for c in shared_changes] == list(range(1, 2 * WRITES + 1))
    # Every writer's every replacement is there, once.
    got = sorted((c["value"]["writer"], c["value"]["i"]) for c in shared_changes)
    assert got == sorted((w, i) for w in range(4) for i in range(1, WRITES, 2))
    final = json.loads(open(os.path.join(idb.store, "shared.json")).read())
    assert final == shared_changes[-1]["value"]


def test_two_descriptors_share_one_file(idb):
    # Like any local file system: descriptors open on one file see each
    # other's writes; each close commits what the file holds then.
    path = os.path.join(idb.store, "1.json")
    with open(path, "w") as f:
        f.write('{"v": 1}\n')
    a = os.open(path, os.O_WRONLY | os.O_TRUNC)
    b = os.open(path, os.O_RDONLY)
    os.write(a, b'{"v": 2}\n')
    assert os.read(b, 100) == b'{"v": 2}\n'
    os.close(b)  # a reader's close commits the writer's content
    os.close(a)
    assert json.loads(open(path).read()) == {"v": 2}
    assert [c["value"] for c in idb.changes() if c["key"] == 1] == [{"v": 1}, {"v": 2}]


CRASH_WRITER = r"""
import json, os, sys
store, log = sys.argv[1], sys.argv[2]
with open(log, "a", buffering=1) as out:
    i = 0
    while True:
        path = os.path.join(store, "%d.json" % (i % 300))
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, json.dumps({"i": i}).encode() + b"\n")
            os.close(fd)
        except OSError:
            break
        out.write("%d\n" % i)   # only after close() succeeded
        i += 1
"""


def test_sigkill_then_remount_keeps_every_closed_write(idb, tmp_path):
    script = tmp_path / "w.py"
    script.write_text(CRASH_WRITER)
    rng = random.Random(7)
    for round_ in range(3):
        log = tmp_path / ("acks%d" % round_)
        w = subprocess.Popen([sys.executable, str(script), idb.store, str(log)],
                             stderr=subprocess.DEVNULL)
        # Kill at a random moment once writing is under way (an
        # interpreter can take longer to start than the random delay).
        deadline = time.monotonic() + 60
        while not (log.exists() and log.read_text().strip()):
            assert w.poll() is None, "the writer stopped before writing"
            assert time.monotonic() < deadline, "the writer never wrote"
            time.sleep(0.01)
        time.sleep(0.1 + rng.random() * 0.5)
        idb.daemon.kill()
        w.wait(timeout=30)
        acked = [int(x) for x in log.read_text().split()]
        assert acked, "the writer got nothing done before the kill"
        idb.daemon.start()
        # Every write whose close() returned 0 is there: for each file,
        # its content is at least the last acknowledged write to it.
        last = {}
        for i in acked:
            last[i % 300] = i
        for slot, i in last.items():
            got = json.loads(open(os.path.join(idb.store, "%d.json" % slot)).read())
            assert got["i"] >= i, (slot, got, i)
        changes = idb.changes()
        seqs = [c["seq"] for c in changes]
        assert seqs == sorted(set(seqs))
        sh("ls -l > /dev/null", cwd=idb.store)


def truncating_writer(store, wid, errors):
    """Rewrites one shared record in place (open O_TRUNC, write, close)."""
    try:
        for i in range(WRITES // 4):
            with open(os.path.join(store, "shared.json"), "w") as f:
                f.write(json.dumps({"writer": wid, "i": i, "pad": "x" * (wid * 7)}) + "\n")
    except Exception as e:  # reported by the main thread
        errors.append(e)


def test_private_writes_commit_whole_revisions(start_idb):
    # With -o private_writes every open for writing has a copy of its own:
    # four processes rewriting one file at once never mix their bytes, and
    # every close commits one whole revision.
    idb = start_idb(["private_writes"])
    errors = []
    run_at_once(truncating_writer, [(idb.store, w, errors) for w in range(4)])
    assert errors == []
    changes = idb.changes()
    assert len(changes) == WRITES
    assert [c["rev"] for c in changes] == list(range(1, WRITES + 1))
    got = sorted((c["value"]["writer"], c["value"]["i"]) for c in changes)
    assert got == sorted((w, i) for w in range(4) for i in range(WRITES // 4))
    final = json.loads(open(os.path.join(idb.store, "shared.json")).read())
    assert final == changes[-1]["value"]
