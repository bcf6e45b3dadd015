"""mount-helpers/mount.idbmount: `mount -t fuse.idbmount`, fstab lines and
the helper run by hand all give a working mount of the right data directory.

The helper is run from the source tree (IDBMOUNT_SOURCE_DIR) with the built
daemon (IDBMOUNT_BIN), both set by ctest. For `mount -t` the helper is linked
as /sbin/mount.fuse.idbmount for the length of a test, since mount(8) looks
for helpers in /sbin only; a different file already there (the installed
package's link, say) is never replaced.
"""
import errno
import json
import os
import subprocess
import time

import pytest

from conftest import daemon_pids, mount_entry, mount_helper_link_lock, wait_gone

SOURCE_DIR = os.environ.get(
    "IDBMOUNT_SOURCE_DIR",
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
HELPER = os.path.join(SOURCE_DIR, "mount-helpers", "mount.idbmount")
IDBMOUNT = os.path.abspath(os.environ.get("IDBMOUNT_BIN", "build/idbmount"))
IDBMOUNTCTL = os.path.abspath(os.environ.get("IDBMOUNTCTL_BIN", "build/idbmountctl"))
SBIN_LINK = "/sbin/mount.fuse.idbmount"
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


class Mount:
    """A data directory and a mountpoint under tmp_path; `finish` unmounts
    whatever is left and checks that the detached daemon exited cleanly."""

    def __init__(self, tmp_path, name="m"):
        self.data = str(tmp_path / (name + "-data"))
        self.mnt = str(tmp_path / (name + "-mnt"))
        os.makedirs(self.mnt)
        self.env = dict(os.environ, IDBMOUNT_BIN=IDBMOUNT)

    def ctl(self, *args):
        p = subprocess.run([IDBMOUNTCTL, "--data", self.data, *args],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0, "idbmountctl %s: %s" % (args, p.stderr)
        return p.stdout

    def seed(self):
        """A record made before mounting, to show which data dir is served."""
        self.ctl("client", "add", "alice")
        self.ctl("put", "alice/shop/orders", "1", '{"item":"tea"}')

    def run(self, args, timeout=30, umask=-1):
        """Runs a mount command; it must return once the mount is up (the
        daemon detaches), so a hang is a failure."""
        return subprocess.run(args, capture_output=True, text=True,
                              env=self.env, timeout=timeout,
                              stdin=subprocess.DEVNULL, umask=umask)

    def helper(self, *args, source=None, umask=-1):
        return self.run(["sh", HELPER, source or self.data, self.mnt, *args], umask=umask)

    def check_mounted(self, source=None):
        assert os.path.ismount(self.mnt), "nothing mounted at " + self.mnt
        entry = mount_entry(self.mnt)
        assert entry is not None, "findmnt does not show " + self.mnt
        src, fstype, options = entry
        assert fstype == "fuse.idbmount"
        assert src == (source or self.data)
        ls = subprocess.run(["ls", "-la", self.mnt], capture_output=True, text=True)
        assert ls.returncode == 0, ls.stderr
        with open(os.path.join(self.mnt, "alice", "shop", "orders", "1.json")) as f:
            assert json.loads(f.read()) == {"item": "tea"}
        return options

    def unmount(self, how=("fusermount3", "-u")):
        pids = daemon_pids(self.mnt)
        assert pids, "no idbmount process serves " + self.mnt
        p = subprocess.run([*how, self.mnt], capture_output=True, text=True)
        assert p.returncode == 0, p.stderr
        assert not os.path.ismount(self.mnt)
        assert wait_gone(pids) == [], "idbmount did not exit after the unmount"
        self.check_log()

    def check_log(self):
        """The detached daemon writes to DATADIR/idbmount.log; sanitizer
        reports (in the build-asan run) land there too."""
        log = os.path.join(self.data, "idbmount.log")
        if os.path.exists(log):
            with open(log, errors="replace") as f:
                text = f.read()
            for mark in SANITIZER_MARKS:
                assert mark not in text, "idbmount.log:\n" + text

    def finish(self):
        pids = daemon_pids(self.mnt)
        if os.path.ismount(self.mnt) or mount_entry(self.mnt):
            subprocess.run(["fusermount3", "-u", "-z", self.mnt],
                           stderr=subprocess.DEVNULL)
        for pid in wait_gone(pids, timeout=10):
            os.kill(pid, 9)


@pytest.fixture
def mount(tmp_path):
    assert os.path.exists("/dev/fuse"), \
        "/dev/fuse is missing: run mount-helpers/install-deps.sh --test"
    assert os.access(HELPER, os.R_OK), HELPER
    m = Mount(tmp_path)
    m.seed()
    yield m
    m.finish()


@pytest.fixture
def sbin_helper():
    """Links the helper as /sbin/mount.fuse.idbmount for one test, holding
    the link's lock (test_package.py installs the package's link there)."""
    assert os.access(HELPER, os.X_OK), \
        HELPER + " is not executable; mount(8) runs helpers directly"
    with mount_helper_link_lock():
        made = False
        if os.path.lexists(SBIN_LINK):
            if not (os.path.exists(SBIN_LINK) and os.path.samefile(SBIN_LINK, HELPER)):
                owner = subprocess.run(["dpkg-query", "-S", os.path.realpath(SBIN_LINK)],
                                       capture_output=True, text=True).stdout.strip()
                pytest.fail("%s exists and is not %s (%s); not replacing it (remove "
                            "it, or the package, to run this test)" %
                            (SBIN_LINK, HELPER, owner or "no package owns it"))
        else:
            os.symlink(HELPER, SBIN_LINK)
            made = True
        try:
            yield SBIN_LINK
        finally:
            if made and os.path.islink(SBIN_LINK) and \
                    os.readlink(SBIN_LINK) == HELPER:
                os.unlink(SBIN_LINK)


def test_helper_mounts_and_drops_mount8_options(mount):
    p = mount.helper("-o", "cache=always,_netdev,defaults,nofail,x-systemd.automount,rw")
    assert p.returncode == 0, p.stderr
    mount.check_mounted()
    mount.unmount()


def test_mount_t_fuse_idbmount(mount, sbin_helper):
    p = mount.run(["mount", "-t", "fuse.idbmount", mount.data, mount.mnt,
                   "-o", "cache=auto"])
    assert p.returncode == 0, p.stdout + p.stderr
    mount.check_mounted()
    mount.unmount(how=("umount",))


def test_fstab_line(mount, sbin_helper, tmp_path):
    fstab = tmp_path / "fstab"
    fstab.write_text("# idbmount\n%s  %s  fuse.idbmount  defaults,_netdev,cache=never  0 0\n"
                     % (mount.data, mount.mnt))
    p = mount.run(["mount", "-T", str(fstab), mount.mnt])
    assert p.returncode == 0, p.stdout + p.stderr
    mount.check_mounted()
    # The source shows as the data directory, so `mount -a` knows the line
    # is mounted and does not start a second daemon.
    p = mount.run(["mount", "-T", str(fstab), "-a", "-v"])
    assert p.returncode == 0, p.stdout + p.stderr
    assert "already mounted" in p.stdout + p.stderr
    assert len(daemon_pids(mount.mnt)) == 1
    mount.unmount()


def test_fstab_line_names_the_sinks(mount, sbin_helper, tmp_path):
    """fstab, mount -t and the systemd unit pass only -o: config=FILE names
    the sinks there as --config does. The change a put makes reaches the
    dir sink's spool directory."""
    spool = tmp_path / "spool"
    spool.mkdir()
    ini = tmp_path / "sinks.ini"
    ini.write_text("[sink spool]\ntype = dir\npath = %s\n" % spool)
    fstab = tmp_path / "fstab"
    fstab.write_text("%s  %s  fuse.idbmount  defaults,config=%s  0 0\n"
                     % (mount.data, mount.mnt, ini))
    p = mount.run(["mount", "-T", str(fstab), mount.mnt])
    assert p.returncode == 0, p.stdout + p.stderr
    mount.check_mounted()
    mount.ctl("put", "alice/shop/orders", "2", '{"item":"jam"}')
    deadline = time.monotonic() + 30
    lines = []
    while time.monotonic() < deadline and not any('"jam"' in l for l in lines):
        time.sleep(0.1)
        lines = [l for f in spool.glob("*.jsonl") for l in f.read_text().splitlines()]
    assert any('"jam"' in l for l in lines), (sorted(os.listdir(spool)), lines)
    mount.unmount()


def test_read_only_mount(mount):
    p = mount.helper("-o", "ro")
    assert p.returncode == 0, p.stderr
    options = mount.check_mounted()
    assert "ro" in options
    with pytest.raises(OSError) as e:
        with open(os.path.join(mount.mnt, "alice", "shop", "orders", "1.json"), "w") as f:
            f.write("{}\n")
    assert e.value.errno == errno.EROFS
    mount.unmount()


def test_allow_other_needs_default_permissions(mount):
    p = mount.helper("-o", "allow_other")
    assert p.returncode == 1
    assert "allow_other needs default_permissions" in p.stderr
    assert not os.path.ismount(mount.mnt)
    p = mount.helper("-o", "allow_other,default_permissions")
    assert p.returncode == 0, p.stderr
    options = mount.check_mounted()
    assert "allow_other" in options and "default_permissions" in options
    mount.unmount()


def test_default_data_directory(mount):
    """`idbmount` (or `none`) as the source means the daemon's default."""
    mount.env["IDBMOUNT_DATA"] = mount.data
    p = mount.helper("-o", "cache=never", source="idbmount")
    assert p.returncode == 0, p.stderr
    mount.check_mounted(source="idbmount")
    mount.unmount()


def test_a_detached_daemon_keeps_its_files_private(tmp_path):
    """Under umask 022 with a data directory made by a plain mkdir (0755,
    as /var/lib/idbmount in the fstab example), the daemon's log and its
    database files are still 0600, and the directory gets a warning."""
    m = Mount(tmp_path)
    os.mkdir(m.data, 0o755)
    try:
        m.seed()
        p = m.helper("-o", "cache=auto", umask=0o022)
        assert p.returncode == 0, p.stderr
        assert "warning: the data directory %s is open to other users" % m.data in p.stderr
        m.check_mounted()
        with open(os.path.join(m.mnt, "alice", "shop", "orders", "2.json"), "w") as f:
            f.write('{"item": "cake"}\n')
        files = sorted(os.listdir(m.data))
        assert files == ["idbmount.db", "idbmount.db-shm", "idbmount.db-wal",
                         "idbmount.lock", "idbmount.log"], files
        for name in files:
            got = os.stat(os.path.join(m.data, name)).st_mode & 0o777
            assert got == 0o600, (name, oct(got))
        m.unmount()
    finally:
        m.finish()


def test_refusals_mount_nothing(mount):
    cases = [
        (["-o", "no_such_option"], 1, "idbmount"),
        (["-o", "cache=sometimes"], 1, "cache=sometimes"),
        (["-N", "1"], 1, "not supported"),
    ]
    for args, status, words in cases:
        p = mount.helper(*args)
        assert (p.returncode, words in p.stderr) == (status, True), (args, p.stderr)
        assert not os.path.ismount(mount.mnt)
    p = mount.run(["sh", HELPER])
    assert p.returncode == 1 and "usage" in p.stderr
    # -f (fake) says what it would run and mounts nothing.
    p = mount.helper("-fv", "-o", "cache=auto,_netdev")
    assert p.returncode == 0, p.stderr
    assert "--data %s -o cache=auto" % mount.data in p.stderr
    assert not os.path.ismount(mount.mnt)
    mount.env["IDBMOUNT_BIN"] = "/nonexistent/idbmount"
    p = mount.helper()
    assert p.returncode == 1 and "IDBMOUNT_BIN" in p.stderr


def test_quickstart_mounts_demo_data_and_serves_the_demo_page(tmp_path):
    """The README's first command, as a user runs it (dependencies already
    installed by the test command, so it only checks and builds)."""
    import socket
    import urllib.request
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mnt = str(tmp_path / "mnt")
    data = tmp_path / "data"
    env = dict(os.environ, IDBMOUNT_DATA=str(data), IDBMOUNT_LISTEN="127.0.0.1:%d" % port)
    out = open(tmp_path / "quickstart.log", "w+")
    p = subprocess.Popen(["bash", os.path.join(SOURCE_DIR, "mount-helpers", "quickstart.sh"), mnt],
                         env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                         start_new_session=True)
    try:
        deadline = time.monotonic() + 900  # it may have to build first
        while mount_entry(mnt) is None:
            assert p.poll() is None, "quickstart exited (%d)" % p.returncode
            assert time.monotonic() < deadline, "quickstart did not mount"
            time.sleep(0.2)
        assert sorted(os.listdir(os.path.join(mnt, "demo", "shop", "orders"))) == \
            ["1.json", "2.json"]
        token_file = data / "demo.token"
        assert oct(os.stat(token_file).st_mode & 0o777) == "0o600"
        token = token_file.read_text().strip()
        deadline = time.monotonic() + 60
        while True:
            try:
                page = urllib.request.urlopen("http://127.0.0.1:%d/" % port, timeout=5).read()
                break
            except OSError:
                assert time.monotonic() < deadline, "the demo page is not served"
                time.sleep(0.2)
        assert b"idbmount demo" in page
        out.seek(0)
        assert "http://127.0.0.1:%d/#token=%s" % (port, token) in out.read()
    finally:
        subprocess.run(["fusermount3", "-u", mnt], capture_output=True)
        try:
            assert p.wait(timeout=60) == 0
        finally:
            if p.poll() is None:
                os.killpg(p.pid, 9)


def test_mount_t_with_a_view(mount, sbin_helper, tmp_path):
    """-o view=DIR through mount(8): one daemon, both mounts; unmounting
    the read-write one takes the view with it."""
    view = str(tmp_path / "m-view")
    os.makedirs(view)
    p = mount.run(["mount", "-t", "fuse.idbmount", mount.data, mount.mnt,
                   "-o", "cache=always,view=" + view])
    assert p.returncode == 0, p.stdout + p.stderr
    mount.check_mounted()
    src, fstype, options = mount_entry(view)
    assert fstype == "fuse.idbmount" and src == mount.data and "ro" in options
    with open(os.path.join(view, "alice", "shop", "orders", "1.json")) as f:
        assert json.loads(f.read()) == {"item": "tea"}
    mount.unmount(how=("umount",))
    assert mount_entry(view) is None


def test_fstab_line_of_a_view_alone(mount, sbin_helper, tmp_path):
    """A machine that only analyses: an fstab line whose mount point is the
    view (-o view_only)."""
    fstab = tmp_path / "fstab"
    fstab.write_text("%s  %s  fuse.idbmount  defaults,view_only,listen=none  0 0\n"
                     % (mount.data, mount.mnt))
    p = mount.run(["mount", "-T", str(fstab), mount.mnt])
    assert p.returncode == 0, p.stdout + p.stderr
    options = mount.check_mounted()
    assert "ro" in options
    with pytest.raises(OSError) as e:
        open(os.path.join(mount.mnt, "alice", "shop", "orders", "2.json"), "w")
    assert e.value.errno == errno.EROFS
    mount.unmount()
