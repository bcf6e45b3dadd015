"""Schema versions (src/DESIGN.md, "Schema versions and upgrades"): a data
directory laid out before versions were counted (user_version 0,
schema0-datadir.sql, made by make-schema0-datadir.sh with the idbmount of
that time) is migrated at the daemon's start with everything in it kept,
and a database newer than this idbmount is refused with nothing changed."""
import hashlib
import json
import os
import re
import sqlite3
import subprocess

from conftest import IDBMOUNT, IDBMOUNTCTL, batch_files, pull_all, read_lines

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURE = os.path.join(HERE, "schema0-datadir.sql")


def fixture_text():
    with open(FIXTURE) as f:
        return f.read()


def load_fixture(data):
    """A data directory holding the fixture's database."""
    os.makedirs(data, mode=0o700)
    db = sqlite3.connect(os.path.join(data, "idbmount.db"))
    db.executescript(fixture_text())
    db.close()


def tokens():
    return dict(re.findall(r"^-- token (\w+) ([0-9a-f]{64})$", fixture_text(), re.M))


def query(data, sql):
    db = sqlite3.connect("file:%s/idbmount.db?mode=ro" % data, uri=True)
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def fixture_rows(sql):
    db = sqlite3.connect(":memory:")
    db.executescript(fixture_text())
    try:
        return db.execute(sql).fetchall()
    finally:
        db.close()


def test_the_fixture_is_a_version_0_data_directory():
    assert fixture_rows("PRAGMA user_version") == [(0,)]
    assert fixture_rows("SELECT value FROM meta WHERE name = 'schema_version'") == [("1",)]


def test_a_version_0_directory_is_migrated_with_everything_kept(ops, tmp_path):
    spool = tmp_path / "spool"
    config = str(tmp_path / "idbmount.ini")
    with open(config, "w") as f:
        f.write("[sink spool]\ntype = dir\npath = %s\nmax_age = 50ms\n" % spool)
    n = ops.node("old", config)
    load_fixture(n.data)
    tables = ["clients", "sync_pipelines", "dbs", "stores", "records", "changes",
              "sync_mutations", "sinks", "sink_intents", "meta"]
    # Orphans (state 3) are rows the kernel held at the last unmount; every
    # start deletes them.
    select = {t: "SELECT * FROM %s %s ORDER BY 1" % (t, "WHERE state != 3" if t == "records"
                                                    else "") for t in tables}
    before = {t: fixture_rows(select[t]) for t in tables}
    n.start()
    assert "idbmount: migrated %s from schema 0 to 1" % n.data in n.stderr()
    assert query(n.data, "PRAGMA user_version") == [(1,)]
    for t in tables:
        after = query(n.data, select[t])
        assert after == before[t], t
    # Through the programs: clients, tokens, records, the change log, sinks.
    assert n.ctl("client", "list").stdout.split() == ["alice", "bob"]
    assert json.loads(n.ctl("get", "alice/shop/orders", "3").stdout) == \
        {"id": 3, "total": 30, "item": "thing 3"}
    assert json.loads(n.ctl("get", "bob/notes/items", '"todo"').stdout) == \
        {"text": "write tests", "done": True}
    assert n.ctl("get", "alice/shop/orders", "5", check=False).returncode == 1  # deleted
    with open(os.path.join(n.mnt, "alice", "shop", "customers", "ann.json")) as f:
        assert json.load(f) == {"name": "Ann", "tags": ["a", "b"]}
    assert [json.loads(l)["seq"] for l in n.ctl("log").stdout.splitlines()] == \
        list(range(1, 22))
    t = tokens()
    changes, epoch = pull_all(n.api(t["alice"]))
    assert epoch == query(n.data, "SELECT value FROM meta WHERE name = 'epoch'")[0][0]
    assert {c["key"] for c in changes if c["db"] == "app"} == {"d1", "theme"}  # d2 deleted
    assert pull_all(n.api(t["bob"]))[0]
    r = n.api(t["etl"]).get("/v1/changes?since=0")
    assert r.status == 200, r
    status = {s["name"]: s for s in n.status()["sinks"]}
    assert status["spool"]["cursor"] == 21 and status["refused"]["parked"] == 3
    # The cursor goes on where it was: a new change ships alone, under the
    # epoch the directory always had.
    n.ctl("put", "alice/shop/orders", "6", '{"id": 6}')
    n.wait_caught_up("spool")
    files = batch_files(str(spool))
    assert len(files) == 1 and epoch in os.path.basename(files[0])
    assert [json.loads(l)["seq"] for l in read_lines(files)] == [22]
    # The next start has nothing to migrate.
    assert n.stop() == 0
    n.start()
    assert n.stderr().count("migrated") == 1


def test_a_newer_schema_is_refused_and_left_alone(tmp_path):
    data = str(tmp_path / "data")
    load_fixture(data)
    db = sqlite3.connect(os.path.join(data, "idbmount.db"))
    db.execute("PRAGMA user_version = 99")
    db.close()

    def state():
        out = {}
        for name in sorted(os.listdir(data)):
            with open(os.path.join(data, name), "rb") as f:
                out[name] = hashlib.sha256(f.read()).hexdigest()
        return out

    before = state()
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = subprocess.run([IDBMOUNT, "-f", "--data", data, "--listen", "127.0.0.1:0", str(mnt)],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 1
    assert "schema version 99, newer than this idbmount knows (1)" in p.stderr, p.stderr
    assert "Nothing was changed" in p.stderr
    assert not os.path.ismount(mnt)
    p = subprocess.run([IDBMOUNTCTL, "--data", data, "ls"], capture_output=True, text=True,
                       timeout=60)
    assert p.returncode == 1 and "schema version 99" in p.stderr, p.stderr
    assert state() == before
