"""The Debian package, as an operator builds, installs, uses and removes it.

`cmake --build BUILD --target package` in a clean build directory with the
defaults (no -Werror) makes BUILD/idbmount_VERSION_ARCH.deb; `dpkg -i`
installs it on this machine; the programs run from /usr/bin, `mount -t
fuse.idbmount` goes through the packaged helper to the packaged daemon,
the installed logrotate snippet rotates that daemon's log, and the systemd
unit is checked by systemd-analyze; `dpkg -r` then `dpkg -P` leave no file
of the package and every file of the machine's own.

Needs root and dpkg: the test command runs as root on Debian 12, where
install-deps.sh has installed the package's dependencies. An idbmount
package installed before is an error here, never replaced. The package is
purged in a finally, and /sbin/mount.fuse.idbmount (the package's link while
it is installed; on Debian 12 the same file as /usr/sbin/mount.fuse.idbmount)
is put back as it was, under the lock test_mount_helper.py takes for it.
"""
import filecmp
import glob
import json
import os
import re
import shutil
import subprocess
import urllib.request

import pytest

from conftest import daemon_pids, mount_entry, mount_helper_link_lock, wait_for, wait_gone

SOURCE_DIR = os.environ.get(
    "IDBMOUNT_SOURCE_DIR",
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

# What the package holds (directories aside): each file with its source, or
# None for what the build makes; the one link, with its target.
PACKAGE_FILES = {
    "/usr/bin/idbmount": None,
    "/usr/bin/idbmountctl": None,
    "/usr/sbin/mount.idbmount": "mount-helpers/mount.idbmount",
    "/lib/systemd/system/idbmount@.service": "mount-helpers/idbmount@.service",
    "/etc/logrotate.d/idbmount": "mount-helpers/idbmount.logrotate",
    "/usr/share/doc/idbmount/README.md": "README.md",
    "/usr/share/doc/idbmount/idbmount.example.ini": "mount-helpers/idbmount.example.ini",
    "/usr/share/doc/idbmount/idbmount-nodes.nginx.conf":
        "mount-helpers/idbmount-nodes.nginx.conf",
    "/usr/share/doc/idbmount/copyright": "mount-helpers/copyright",
    "/usr/share/doc/idbmount/changelog.gz": None,
}
EXECUTABLES = {"/usr/bin/idbmount", "/usr/bin/idbmountctl", "/usr/sbin/mount.idbmount"}
# As Debian 12's sshfs ships /usr/sbin/mount.fuse.sshfs: /sbin is /usr/sbin.
PACKAGE_LINKS = {"/usr/sbin/mount.fuse.idbmount": "mount.idbmount"}
CONFFILE = "/etc/logrotate.d/idbmount"
# The Debian packages of the libraries the binaries link, which Depends
# must name (dpkg-shlibdeps finds them), and fusermount3's.
DEPENDS = {"libfuse3-3", "libsqlite3-0", "libjansson4", "libcurl4", "libmicrohttpd12",
           "libinih1", "zlib1g", "libssl3", "fuse3"}
TOOLS = ("cmake", "cpack", "dpkg", "dpkg-deb", "dpkg-shlibdeps", "readelf", "mount",
         "logrotate", "systemd-analyze")


def run(args, timeout=120, **kwargs):
    return subprocess.run([str(a) for a in args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=timeout, **kwargs)


def checked(args, timeout=120, **kwargs):
    p = run(args, timeout=timeout, **kwargs)
    assert p.returncode == 0, "%s failed (%d):\n%s%s" % (
        " ".join(str(a) for a in args), p.returncode, p.stdout, p.stderr)
    return p


def package_status():
    """dpkg's status of the idbmount package: installed, config-files, ...;
    not-installed when dpkg does not know it."""
    p = run(["dpkg-query", "-W", "-f=${db:Status-Status}", "idbmount"])
    return p.stdout.strip() if p.returncode == 0 and p.stdout.strip() else "not-installed"


def project_version():
    with open(os.path.join(SOURCE_DIR, "CMakeLists.txt")) as f:
        return re.search(r"project\(idbmount VERSION (\S+)", f.read()).group(1)


def deb_contents(deb):
    """{path: (type, mode, owner, link target)} of the .deb, as dpkg-deb -c
    lists it; type is d, - or l."""
    contents = {}
    for line in checked(["dpkg-deb", "-c", deb]).stdout.splitlines():
        fields = line.split(None, 5)
        name, _, target = fields[5].partition(" -> ")
        path = "/" + name.lstrip("./").rstrip("/")
        if path != "/":
            contents[path] = (fields[0][0], fields[0][1:], fields[1], target or None)
    return contents


def machine_state(path, kind):
    """What is at `path` now, where the package has an entry of `kind`
    (d, - or l): None, ("dir",) (also a link to a directory where the
    package has a directory, as /lib on Debian 12), ("link", target) or
    ("file",)."""
    if kind == "d" and os.path.isdir(path):
        return ("dir",)
    if os.path.islink(path):
        return ("link", os.readlink(path))
    if os.path.lexists(path):
        return ("file",)
    return None


def machine_env():
    """The environment of an operator's shell: no IDBMOUNT_BIN pointing the
    helper at the build tree's daemon, the system's PATH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("IDBMOUNT")}
    env["PATH"] = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    return env


class Package:
    def __init__(self, build, deb, contents, before, listings):
        self.build = build
        self.deb = deb
        self.contents = contents
        self.before = before  # machine_state of each package path before dpkg -i
        self.listings = listings  # the machine's own names in the package's directories


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    """Builds the package in a clean build directory, installs it, and
    purges it and restores what its paths held afterwards, whatever
    happened."""
    assert os.geteuid() == 0, "dpkg -i needs root"
    missing = [tool for tool in TOOLS if shutil.which(tool) is None]
    assert not missing, "missing %s: run mount-helpers/install-deps.sh --test" % missing
    with mount_helper_link_lock():
        assert package_status() == "not-installed", \
            "an idbmount package is on this machine (%s): this test installs and purges " \
            "its own, so remove it first (dpkg -P idbmount)" % package_status()
        build = tmp_path_factory.mktemp("package") / "build"
        checked(["cmake", "-S", SOURCE_DIR, "-B", build], timeout=300)
        checked(["cmake", "--build", build, "--target", "package",
                 "--parallel", str(os.cpu_count() or 2)], timeout=900)
        debs = glob.glob(str(build / "idbmount_*.deb"))
        assert len(debs) == 1, debs
        contents = deb_contents(debs[0])
        before = {path: machine_state(path, entry[0]) for path, entry in contents.items()}
        # A file of the machine where the package puts one would be
        # overwritten by dpkg and deleted by dpkg -r: refuse instead. (A
        # link, such as /sbin/mount.fuse.idbmount from `cmake --install`, is
        # put back afterwards.)
        clashes = [p for p, state in before.items() if state == ("file",)]
        assert not clashes, "files of this machine where the package puts its own " \
            "(remove them to run this test): %s" % clashes
        # The machine's own names in each directory where the package adds
        # something (a file, or a directory of its own).
        shared = {os.path.dirname(p) for p, state in before.items() if state is None}
        listings = {path: sorted(set(os.listdir(path)) -
                                 {os.path.basename(p) for p in contents
                                  if os.path.dirname(p) == path})
                    for path in shared if before.get(path) == ("dir",)}
        try:
            checked(["dpkg", "-i", debs[0]], timeout=300)
            yield Package(build, debs[0], contents, before, listings)
        finally:
            if package_status() != "not-installed":
                run(["dpkg", "-P", "idbmount"], timeout=300)
            for path, state in before.items():
                if state and state[0] == "link" and not os.path.lexists(path):
                    os.symlink(state[1], path)


def test_the_package_holds_what_an_operator_needs(package):
    fields = {}
    for name in ("Package", "Version", "Architecture", "Section", "Priority", "Maintainer",
                 "Depends", "Description"):
        fields[name] = checked(["dpkg-deb", "-f", package.deb, name]).stdout.strip()
    assert fields["Package"] == "idbmount"
    assert fields["Version"] == project_version()
    arch = checked(["dpkg", "--print-architecture"]).stdout.strip()
    assert fields["Architecture"] == arch
    assert os.path.basename(package.deb) == "idbmount_%s_%s.deb" % (project_version(), arch)
    assert (fields["Section"], fields["Priority"]) == ("utils", "optional")
    assert re.fullmatch(r".+ <[^@ ]+@[^@ ]+>", fields["Maintainer"]), fields["Maintainer"]
    assert "IndexedDB" in fields["Description"].splitlines()[0]
    depends = {dep.split()[0] for dep in fields["Depends"].split(",")}
    assert DEPENDS <= depends, "missing from Depends: %s" % (DEPENDS - depends)

    files = {p: c for p, c in package.contents.items() if c[0] != "d"}
    assert set(files) == set(PACKAGE_FILES) | set(PACKAGE_LINKS), sorted(files)
    for path, (kind, mode, owner, target) in files.items():
        assert owner == "root/root", (path, owner)
        if path in PACKAGE_LINKS:
            assert (kind, target) == ("l", PACKAGE_LINKS[path]), (path, kind, target)
        else:
            assert kind == "-", path
            assert mode == ("rwxr-xr-x" if path in EXECUTABLES else "rw-r--r--"), (path, mode)
    # What the package copies from the source tree is the source tree's.
    for path, source in PACKAGE_FILES.items():
        if source:
            assert filecmp.cmp(path, os.path.join(SOURCE_DIR, source), shallow=False), path
    conffiles = checked(["dpkg-query", "-W", "-f=${Conffiles}", "idbmount"]).stdout
    assert [line.split()[0] for line in conffiles.splitlines() if line.strip()] == [CONFFILE]
    # Built as a user's `cmake -S . -B BUILD` builds: RelWithDebInfo, no
    # -Werror; the binaries in the package are stripped.
    for target in ("idbmount", "idbmount_core", "idbmount_fs", "idbmount_http",
                   "idbmount_sinks", "idbmountctl"):
        with open(package.build / "CMakeFiles" / (target + ".dir") / "flags.make") as f:
            flags = re.search(r"^C_FLAGS = (.*)$", f.read(), re.M).group(1).split()
        assert flags[:3] == ["-O2", "-g", "-DNDEBUG"] and "-Werror" not in flags, \
            (target, flags)
    for binary in ("/usr/bin/idbmount", "/usr/bin/idbmountctl"):
        sections = checked(["readelf", "-S", "-W", binary]).stdout
        assert ".symtab" not in sections and ".debug_" not in sections, binary
    # dpkg knows each file, and mount(8)'s /sbin/mount.fuse.idbmount is the
    # packaged helper.
    listed = set(checked(["dpkg", "-L", "idbmount"]).stdout.split()) - {"/."}
    assert listed == set(package.contents)
    assert os.path.realpath("/sbin/mount.fuse.idbmount") == "/usr/sbin/mount.idbmount"


def test_the_programs_run_from_usr_bin(package, tmp_path):
    p = checked(["/usr/bin/idbmount", "--help"], env=machine_env())
    assert p.stdout.startswith("usage: idbmount")
    data = tmp_path / "data"
    ctl = ["/usr/bin/idbmountctl", "--data", data]
    token = checked(ctl + ["client", "add", "alice"], env=machine_env()).stdout.strip()
    assert re.fullmatch(r"[0-9a-f]{64}", token), token
    checked(ctl + ["put", "alice/shop/orders", "1", '{"item":"tea"}'], env=machine_env())
    p = checked(ctl + ["get", "alice/shop/orders", "1"], env=machine_env())
    assert json.loads(p.stdout) == {"item": "tea"}
    assert oct(os.stat(data).st_mode & 0o777) == "0o700"


def test_mount_t_goes_through_the_packaged_helper(package, tmp_path):
    """mount -t fuse.idbmount, as an fstab line does it: the packaged
    helper starts the packaged daemon; a record written through the mount
    is read back through the mount and by idbmountctl; the installed
    logrotate snippet rotates the daemon's log; umount stops it."""
    var_lib = tmp_path / "var-lib-idbmount"  # stands for /var/lib/idbmount
    os.mkdir(var_lib, 0o700)
    data, mnt = var_lib / "inst", tmp_path / "mnt"
    os.mkdir(mnt)
    env = machine_env()
    ctl = ["/usr/bin/idbmountctl", "--data", data]
    checked(ctl + ["client", "add", "alice"], env=env)
    checked(ctl + ["put", "alice/shop/orders", "1", '{"item":"tea"}'], env=env)
    p = run(["mount", "-t", "fuse.idbmount", data, mnt, "-o", "cache=auto,listen=127.0.0.1:0"],
            env=env, timeout=60)
    pids = []
    try:
        assert p.returncode == 0, p.stdout + p.stderr
        assert mount_entry(str(mnt))[:2] == (str(data), "fuse.idbmount")
        # Right after mount(8) returns, the daemon's watchdog may not have
        # exec'ed yet and shows as a second daemon.
        def one_daemon():
            found = daemon_pids(str(mnt))
            return found if len(found) == 1 else None

        pids = wait_for("one daemon serving the mount", one_daemon)
        assert os.readlink("/proc/%d/exe" % pids[0]) == "/usr/bin/idbmount"

        record = mnt / "alice" / "shop" / "orders" / "2.json"
        checked(["sh", "-c", 'printf \'{"item": "cake"}\\n\' > "$1"', "sh", record], env=env)
        assert json.loads(checked(["cat", record]).stdout) == {"item": "cake"}
        assert json.loads(checked(["cat", mnt / "alice/shop/orders/1.json"]).stdout) == \
            {"item": "tea"}
        p = checked(ctl + ["get", "alice/shop/orders", "2"], env=env)
        assert json.loads(p.stdout) == {"item": "cake"}

        # The packaged daemon serves the browser library built into it.
        log = data / "idbmount.log"
        port = wait_for("the daemon's HTTP port", lambda: re.search(
            r"serving http://127\.0\.0\.1:\d+ \(port (\d+)\)", log.read_text()))
        with urllib.request.urlopen("http://127.0.0.1:%s/idbmount.js" % port.group(1),
                                    timeout=30) as r:
            assert r.status == 200 and len(r.read()) > 1000

        # The installed snippet, as logrotate reads it, then run on this
        # daemon's log with the test's directory for /var/lib/idbmount: its
        # glob takes a data directory one level below, and its postrotate
        # finds the daemon with the packaged idbmountctl (PATH).
        checked(["logrotate", "-d", CONFFILE], env=env)
        with open(CONFFILE) as f:
            config = f.read().replace("/var/lib/idbmount", str(var_lib))
        (tmp_path / "logrotate.conf").write_text(config)
        checked(["logrotate", "-f", "-s", tmp_path / "logrotate.state",
                 tmp_path / "logrotate.conf"], env=env)
        assert (data / "idbmount.log.1").exists()
        wait_for("the reopened log", lambda: "SIGHUP: reopened" in log.read_text())
        assert oct(os.stat(log).st_mode & 0o777) == "0o600"

        p = run(["umount", mnt], env=env, timeout=60)
        assert p.returncode == 0, p.stderr
        assert mount_entry(str(mnt)) is None
        assert wait_gone(pids) == [], "the packaged daemon did not exit after umount"
    finally:
        pids = pids or daemon_pids(str(mnt))
        if mount_entry(str(mnt)):
            run(["fusermount3", "-u", "-z", mnt])
        for pid in wait_gone(pids, timeout=10):
            os.kill(pid, 9)


def test_the_systemd_unit_loads(package):
    """CI's container has no systemd as PID 1, so no instance is started
    here: `systemd-analyze verify` loads the installed unit as systemd
    would, offline (an instance of the template), and reports unknown or
    bad settings and commands it cannot find (ExecStart's idbmount, found
    in /usr/bin only once the package is installed)."""
    p = run(["systemd-analyze", "verify", "/lib/systemd/system/idbmount@.service"],
            env=machine_env())
    assert (p.returncode, p.stdout + p.stderr) == (0, "")


def test_remove_then_purge_leave_nothing_behind(package):
    """dpkg -r leaves only the conffile, with the operator's edit; dpkg -P
    takes that too. Each path of the package that was not on the machine
    before is gone; the directories the package shares with the machine
    hold exactly the machine's own files, as before."""
    with open(CONFFILE, "a") as f:
        f.write("# edited by the operator\n")
    # An upgrade (the same package again) keeps the edited conffile.
    checked(["dpkg", "-i", package.deb], timeout=300)
    assert open(CONFFILE).read().endswith("# edited by the operator\n")

    checked(["dpkg", "-r", "idbmount"], timeout=300)
    assert package_status() == "config-files"
    assert open(CONFFILE).read().endswith("# edited by the operator\n")
    left = [p for p in package.contents if p != CONFFILE and
            package.before[p] is None and os.path.lexists(p)]
    assert left == [], "dpkg -r left %s" % left

    checked(["dpkg", "-P", "idbmount"], timeout=300)
    assert package_status() == "not-installed"
    for path, state in package.before.items():
        if state == ("dir",):
            assert os.path.isdir(path), path
        else:
            assert not os.path.lexists(path), "dpkg -P left " + path
    for path, names in package.listings.items():
        assert sorted(os.listdir(path)) == names, path
