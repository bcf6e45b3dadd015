"""idbmountctl's refusals: what it will not make or touch, each with a clear
message, the exit status of its kind, and nothing changed."""
import os

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
            want = ["idbmount.db", "idbmount.db-shm", "idbmount.db-wal"]
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
