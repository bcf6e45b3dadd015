"""idbmountctl's refusals: what it will not make or touch, each with a clear
message, the exit status of its kind, and nothing changed."""
import os

import pytest

from conftest import Daemon, ctl, wait_for


def test_keypath_holding_nul_is_refused(tmp_path):
    data = str(tmp_path / "data")
    ctl(data, "client", "add", "alice")
    p = ctl(data, "mkstore", "alice/shop/users", "--keypath", '"a\\u0000b"', check=False)
    assert p.returncode == 2, p.stderr
    assert "U+0000" in p.stderr
    p = ctl(data, "mkstore", "alice/shop/users", "--keypath", '["a", "b\\u0000"]', check=False)
    assert p.returncode == 2, p.stderr
    assert "U+0000" in p.stderr
    assert ctl(data, "ls", "alice").stdout == ""


def mode(path):
    return os.stat(path).st_mode & 0o777


def test_files_are_0600_whatever_the_umask(tmp_path):
    """A plain `mkdir` data directory (0755 under umask 022): the database,
    its -wal and -shm hold every record and the token hashes, so only
    their owner may read them; the directory itself gets a warning from
    idbmountctl and the daemon."""
    data = tmp_path / "data"
    old = os.umask(0o022)
    try:
        os.mkdir(data, 0o755)
        p = ctl(str(data), "client", "add", "alice")
        assert "warning: the data directory %s is open to other users (mode 0755)" % data \
            in p.stderr, p.stderr
        assert "chmod 700" in p.stderr
        d = Daemon(data, tmp_path / "mnt")
        d.start()
        try:
            ctl(str(data), "put", "alice/shop/orders", "1", '{"v": 1}')
            # The daemon's threads hold the database open (its -wal and
            # -shm stay) once they have started.
            want = ["idbmount.db", "idbmount.db-shm", "idbmount.db-wal", "idbmount.lock"]
            wait_for("-wal and -shm", lambda: sorted(os.listdir(data)) == want)
            files = sorted(os.listdir(data))
            for name in files:
                assert mode(data / name) == 0o600, (name, oct(mode(data / name)))
        finally:
            assert d.stop() == 0
        assert "warning: the data directory %s is open to other users" % data in d.stderr()
    finally:
        os.umask(old)
    # A private directory gets no warning.
    os.chmod(data, 0o700)
    assert "warning" not in ctl(str(data), "client", "list").stderr


def test_an_older_database_open_to_others_is_made_0600(tmp_path):
    data = tmp_path / "data"
    ctl(str(data), "client", "add", "alice")
    os.chmod(data / "idbmount.db", 0o644)
    ctl(str(data), "client", "list")
    assert mode(data / "idbmount.db") == 0o600


BAD_NAMES = ["a\nb", "a\rb", "a\tb", "a\x7fb", "a\u0085b", "\x1b[31mred", "a/b", "",
             "x" * 256]


def test_a_client_name_that_cannot_be_one_is_refused(tmp_path):
    """A client name is a line of `client list`, a directory of the mount
    and a part of CLIENT/DB/STORE paths: control characters (C0, DEL, C1)
    and '/' cannot be in it."""
    data = str(tmp_path / "data")
    ctl(data, "client", "add", "alice")
    for name in BAD_NAMES:
        for what in ("client", "pipeline"):
            if what == "pipeline" and name in ("a/b", "x" * 256):
                continue  # not a path part, no directory: fine for a pipeline
            p = ctl(data, what, "add", name, check=False)
            assert p.returncode == 2, (what, name, p.stdout, p.stderr)
            assert p.stdout == ""
            assert "%s add: " % what in p.stderr and "name" in p.stderr, p.stderr
            if name.startswith("a") and len(name) == 3 and name != "a/b":
                assert "control character" in p.stderr, p.stderr
    assert ctl(data, "client", "list").stdout == "alice\n"
    assert ctl(data, "pipeline", "list").stdout == ""
    # Anything else is a name: spaces, quotes, any script.
    odd = "Zoë's shop \u4e2d"
    ctl(data, "client", "add", odd)
    assert ctl(data, "client", "list").stdout == "alice\n" + odd + "\n"


IDBMOUNT_APPLICATION_ID = 0x4944424D  # "IDBM"


def sqlite_info(path):
    import sqlite3
    db = sqlite3.connect(path)
    try:
        app = db.execute("PRAGMA application_id").fetchone()[0]
        journal = db.execute("PRAGMA journal_mode").fetchone()[0]
        tables = sorted(r[0] for r in db.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table'"))
    finally:
        db.close()
    return app, journal, tables


def make_sqlite(path, sql):
    import sqlite3
    db = sqlite3.connect(path)
    db.executescript(sql)
    db.commit()
    db.close()


def test_a_new_data_directory_carries_the_application_id(tmp_path):
    data = tmp_path / "data"
    ctl(str(data), "client", "add", "alice")
    app, journal, tables = sqlite_info(data / "idbmount.db")
    assert app == IDBMOUNT_APPLICATION_ID and journal == "wal"
    assert "clients" in tables and "changes" in tables


def test_an_older_idbmount_database_is_adopted(tmp_path):
    """A data directory made before the application_id: our tables, id 0."""
    data = tmp_path / "data"
    ctl(str(data), "client", "add", "alice")
    make_sqlite(data / "idbmount.db", "PRAGMA application_id = 0;")
    assert sqlite_info(data / "idbmount.db")[0] == 0
    assert ctl(str(data), "client", "list").stdout == "alice\n"
    assert sqlite_info(data / "idbmount.db")[0] == IDBMOUNT_APPLICATION_ID


# Another program's database: no id and its own tables, or another id
# (GeoPackage's, "GPKG"), even with a table named like one of ours.
@pytest.mark.parametrize("sql, words", [
    ("CREATE TABLE notes(id INTEGER PRIMARY KEY, text TEXT);"
     "INSERT INTO notes(text) VALUES ('mine');", "its tables: notes"),
    ("PRAGMA application_id = 1196444487;", "application_id 0x47504b47"),
    ("PRAGMA application_id = 1196444487; CREATE TABLE meta(name TEXT, value TEXT);",
     "application_id 0x47504b47"),
])
def test_another_programs_database_is_left_alone(tmp_path, sql, words):
    data = tmp_path / "data"
    os.mkdir(data, 0o700)
    db = data / "idbmount.db"
    make_sqlite(db, sql)
    os.chmod(db, 0o640)
    before = sqlite_info(db)
    content = db.read_bytes()
    for args in (("client", "add", "alice"), ("client", "list"), ("status",)):
        p = ctl(str(data), *args, check=False)
        assert p.returncode == 1, (args, p.stderr)
        assert "not an idbmount database" in p.stderr and words in p.stderr, p.stderr
    d = Daemon(data, tmp_path / "mnt")
    with pytest.raises(RuntimeError, match="not an idbmount database"):
        d.start()
    assert db.read_bytes() == content
    assert sqlite_info(db) == before
    assert mode(db) == 0o640
    assert sorted(os.listdir(data)) == ["idbmount.db"]


def test_the_data_directory_follows_the_environment(tmp_path):
    """Without --data: $IDBMOUNT_DATA, else $XDG_DATA_HOME/idbmount, else
    ~/.local/share/idbmount, for idbmountctl as for the daemon."""
    from conftest import IDBMOUNTCTL
    import subprocess

    def run(env, *args):
        clean = {k: v for k, v in os.environ.items()
                 if k not in ("IDBMOUNT_DATA", "XDG_DATA_HOME", "HOME")}
        clean.update(env)
        return subprocess.run([IDBMOUNTCTL, *args], env=clean, capture_output=True,
                              text=True, timeout=60, check=True)

    run({"IDBMOUNT_DATA": str(tmp_path / "a"), "XDG_DATA_HOME": str(tmp_path / "x"),
         "HOME": str(tmp_path / "h")}, "client", "add", "one")
    run({"XDG_DATA_HOME": str(tmp_path / "x"), "HOME": str(tmp_path / "h")},
        "client", "add", "two")
    run({"HOME": str(tmp_path / "h")}, "client", "add", "three")
    assert ctl(str(tmp_path / "a"), "client", "list").stdout.split() == ["one"]
    assert ctl(str(tmp_path / "x" / "idbmount"), "client", "list").stdout.split() == ["two"]
    assert ctl(str(tmp_path / "h" / ".local" / "share" / "idbmount"),
               "client", "list").stdout.split() == ["three"]


def test_log_limit_prints_at_most_that_many_lines(tmp_path):
    data = str(tmp_path / "data")
    ctl(data, "client", "add", "alice")
    for k in range(5):
        ctl(data, "put", "alice/shop/orders", str(k), '{"k": %d}' % k)
    assert len(ctl(data, "log").stdout.splitlines()) == 5
    lines = ctl(data, "log", "--limit", "2").stdout.splitlines()
    assert lines == ctl(data, "log").stdout.splitlines()[:2]
    p = ctl(data, "log", "--limit", "x", check=False)
    assert p.returncode == 2 and "--limit" in p.stderr, p.stderr
