"""Changes made outside the mount (idbmountctl, another process) show up in
the mount at once, even with the kernel caching everything for a day."""
import json
import os

import pytest

from conftest import sh


@pytest.mark.parametrize("cache", ["always", "auto", "never"])
def test_ctl_changes_visible_at_once(start_idb, cache):
    idb = start_idb(["cache=" + cache])
    path = os.path.join(idb.store, "1.json")
    # The kernel caches a negative entry for the missing name ...
    assert not os.path.exists(path)
    assert os.listdir(idb.store) == []
    idb.ctl("put", "alice/shop/orders", "1", '{"v": 1}')
    # ... and still sees the put, its listing, and its content.
    assert os.listdir(idb.store) == ["1.json"]
    assert json.loads(open(path).read()) == {"v": 1}
    # A changed value: pages and size were cached, must be dropped.
    idb.ctl("put", "alice/shop/orders", "1", json.dumps({"v": "x" * 100}))
    assert json.loads(open(path).read()) == {"v": "x" * 100}
    assert os.stat(path).st_size == len(open(path, "rb").read())
    idb.ctl("put", "alice/shop/orders", "1", '{"v": 3}')
    assert json.loads(sh("cat " + path).stdout) == {"v": 3}
    idb.ctl("rm", "alice/shop/orders", "1")
    assert not os.path.exists(path)
    assert os.listdir(idb.store) == []
    # New stores, databases and clients appear too.
    idb.ctl("mkstore", "alice/crm/contacts", "--keypath", '"id"')
    assert sorted(os.listdir(idb.path("alice"))) == ["crm", "shop"]
    idb.ctl("client", "add", "bob")
    assert sorted(os.listdir(idb.mnt)) == ["alice", "bob"]


def test_open_file_survives_outside_delete(idb):
    idb.ctl("put", "alice/shop/orders", "1", '{"v": 1}')
    path = os.path.join(idb.store, "1.json")
    with open(path) as f:
        idb.ctl("rm", "alice/shop/orders", "1")
        assert json.loads(f.read()) == {"v": 1}
    assert not os.path.exists(path)


def test_import_visible_and_logged(idb, tmp_path):
    f = tmp_path / "in.jsonl"
    f.write_text("".join(json.dumps({"key": i, "value": {"i": i}}) + "\n"
                         for i in range(2500)))
    idb.ctl("import", "alice/shop/orders", str(f))
    names = os.listdir(idb.store)
    assert len(names) == 2500
    assert json.loads(open(os.path.join(idb.store, "2499.json")).read()) == {"i": 2499}
    changes = idb.changes()
    assert len(changes) == 2500
    assert [c["seq"] for c in changes] == sorted(c["seq"] for c in changes)
    assert {c["origin"] for c in changes} == {"import"}


def test_key_types_as_file_names(idb):
    keys = {
        "42.json": 42,
        "-1.5.json": -1.5,
        "1e+21.json": 1e21,
        "alice.json": "alice",
        "a%2Fb.json": "a/b",
        "%342.json": "42",
        "~d2026-01-02T03:04:05.000Z.json": {"~d": "2026-01-02T03:04:05.000Z"},
        "~bAAEC.json": {"~b": "AAEC"},
        '~a["u1",7].json': ["u1", 7],
    }
    for key in keys.values():
        idb.ctl("put", "alice/shop/orders", json.dumps(key), json.dumps({"k": key}))
    assert sorted(os.listdir(idb.store)) == sorted(keys)
    for name, key in keys.items():
        assert json.loads(open(os.path.join(idb.store, name)).read()) == {"k": key}
    # And back: a file made in the mount is logged under its decoded key.
    sh("echo '{}' > '%s'" % os.path.join(idb.store, "~d1999-12-31T23:59:59.999Z.json"))
    assert idb.changes()[-1]["key"] == {"~d": "1999-12-31T23:59:59.999Z"}
    long_key = "k" * 300
    idb.ctl("put", "alice/shop/orders", json.dumps(long_key), "{}")
    hashed = [n for n in os.listdir(idb.store) if n.startswith("~h")]
    assert len(hashed) == 1 and len(hashed[0]) == 2 + 64 + 5
    sh("echo '[1]' > '%s'" % os.path.join(idb.store, hashed[0]))
    assert idb.changes()[-1]["key"] == long_key
    assert idb.changes()[-1]["value"] == [1]
