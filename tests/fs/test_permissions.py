"""Who may see what on a mount other users can reach (allow_other): by
default nobody but the owner; uid=, gid= and umask= grant more, as on FAT
and sshfs mounts. Checked by a throwaway uid through setpriv."""
import os
import shutil
import stat
import subprocess
import tempfile

import pytest

from conftest import Daemon, ctl, unmount

NOBODY = 65534
OTHER = 65533


def as_user(uid, gid, cmd):
    """Runs the shell line `cmd` as uid:gid with no other groups."""
    return subprocess.run(["setpriv", "--reuid=%d" % uid, "--regid=%d" % gid,
                           "--clear-groups", "sh", "-c", cmd],
                          capture_output=True, text=True, timeout=60)


@pytest.fixture
def shared(tmp_path):
    """start(options): a daemon on a mount point other users can reach
    (pytest's own temp directories are 0700)."""
    parent = tempfile.mkdtemp(prefix="idbmount-perm-", dir="/tmp")
    os.chmod(parent, 0o755)
    made = []

    def start(options):
        data = str(tmp_path / "data")
        ctl(data, "client", "add", "alice")
        d = Daemon(data, os.path.join(parent, "mnt"),
                   ["allow_other", "default_permissions"] + options)
        d.start()
        made.append(d)
        store = os.path.join(d.mnt, "alice", "shop", "orders")
        os.makedirs(store)
        with open(os.path.join(store, "1.json"), "w") as f:
            f.write('{"v": 1}\n')
        return d, store

    yield start
    for d in made:
        rc = d.stop() if d.proc else 0
        unmount(d.mnt)
        assert rc == 0, d.stderr()
    shutil.rmtree(parent, ignore_errors=True)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_by_default_only_the_owner(shared):
    d, store = shared([])
    record = os.path.join(store, "1.json")
    assert mode(record) == 0o600 and mode(store) == 0o700
    assert os.stat(record).st_uid == os.getuid()
    p = as_user(NOBODY, NOBODY, "cat " + record)
    assert p.returncode != 0 and "Permission denied" in p.stderr
    p = as_user(NOBODY, NOBODY, "ls " + d.mnt)
    assert p.returncode != 0 and "Permission denied" in p.stderr
    p = as_user(NOBODY, NOBODY, "grep -r v " + d.mnt)
    assert p.returncode != 0 and "Permission denied" in p.stderr


def test_umask_grants_reading(shared):
    d, store = shared(["umask=022"])
    record = os.path.join(store, "1.json")
    assert mode(record) == 0o644 and mode(store) == 0o755
    p = as_user(NOBODY, NOBODY, "cat " + record)
    assert p.returncode == 0 and '"v": 1' in p.stdout
    p = as_user(NOBODY, NOBODY, "echo '{\"v\": 2}' > " + record)
    assert p.returncode != 0 and "Permission denied" in p.stderr
    p = as_user(NOBODY, NOBODY, "echo '{}' > %s/2.json" % store)
    assert p.returncode != 0 and "Permission denied" in p.stderr
    assert open(record).read() == '{"v": 1}\n'
    assert os.listdir(store) == ["1.json"]


def test_uid_and_gid_make_another_user_the_owner(shared):
    d, store = shared(["uid=%d" % NOBODY, "gid=%d" % NOBODY, "umask=007"])
    record = os.path.join(store, "1.json")
    st = os.stat(record)
    assert (st.st_uid, st.st_gid, mode(record)) == (NOBODY, NOBODY, 0o660)
    # The owner reads and writes, through the mount's commit on close.
    p = as_user(NOBODY, NOBODY, "echo '{\"v\": 2}' > %s && cat %s" % (record, record))
    assert p.returncode == 0, p.stderr
    assert open(record).read() == '{"v": 2}\n'
    # A member of the group too; anybody else not at all.
    p = as_user(OTHER, NOBODY, "echo '{\"v\": 3}' > %s/3.json" % store)
    assert p.returncode == 0, p.stderr
    p = as_user(OTHER, OTHER, "cat " + record)
    assert p.returncode != 0 and "Permission denied" in p.stderr
    # chmod still succeeds without effect (cp -p, rsync -a).
    p = as_user(NOBODY, NOBODY, "chmod 0644 " + record)
    assert p.returncode == 0 and mode(record) == 0o660


def test_names_for_uid_and_gid(shared):
    d, store = shared(["uid=nobody", "gid=nogroup"])
    st = os.stat(os.path.join(store, "1.json"))
    assert (st.st_uid, st.st_gid) == (NOBODY, NOBODY)


@pytest.mark.parametrize("option,message", [
    ("uid=no-such-user", "not a known user"),
    ("gid=no-such-group", "not a known group"),
    ("umask=999", "octal mask"),
    ("umask=", "octal mask"),
    ("uid=-1", "not a known user"),
])
def test_bad_owner_options_are_refused(tmp_path, option, message):
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = subprocess.run([os.environ.get("IDBMOUNT_BIN", "build/idbmount"), "-f", "--data",
                        str(tmp_path / "data"), "-o", option, str(mnt)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 2 and message in p.stderr, p.stderr
    assert not os.path.ismount(str(mnt))


@pytest.mark.parametrize("option,status,message", [
    ("config=", 2, "config=: want a file"),
    ("tls_key=", 2, "tls_key=: want a file"),
    ("config=/nonexistent/sinks.ini", 2, "cannot read the configuration"),
    ("tls_cert=/nonexistent/c.pem,tls_key=/nonexistent/k.pem", 1, "/nonexistent/c.pem"),
])
def test_bad_file_options_are_refused(tmp_path, option, status, message):
    """config=, tls_cert= and tls_key= (for fstab lines) fail the start as
    their long options do."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    p = subprocess.run([os.environ.get("IDBMOUNT_BIN", "build/idbmount"), "-f", "--data",
                        str(tmp_path / "data"), "--listen", "127.0.0.1:0", "-o", option,
                        str(mnt)], capture_output=True, text=True, timeout=30)
    assert p.returncode == status and message in p.stderr, p.stderr
    assert not os.path.ismount(str(mnt))
