"""Listings of a store larger than one readdir batch, and while it changes.

The kernel asks for a listing in batches (one READDIRPLUS per getdents64,
about 200 records each) and keeps what it got in its own cache; the daemon
answers each batch with one range query that resumes after the last row id
it gave. These tests read a listing a few entries at a time with glibc's
readdir (as ls does), change the store in the middle, and check what POSIX
promises: a record that exists throughout appears exactly once.
"""
import ctypes
import ctypes.util
import json
import os

from conftest import sh

RECORDS = 2000  # about ten batches

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)


class Dirent(ctypes.Structure):  # glibc's struct dirent on 64-bit Linux
    _fields_ = [("d_ino", ctypes.c_uint64), ("d_off", ctypes.c_int64),
                ("d_reclen", ctypes.c_ushort), ("d_type", ctypes.c_ubyte),
                ("d_name", ctypes.c_char * 256)]


libc.opendir.restype = ctypes.c_void_p
libc.opendir.argtypes = [ctypes.c_char_p]
libc.readdir.restype = ctypes.POINTER(Dirent)
libc.readdir.argtypes = [ctypes.c_void_p]
libc.closedir.argtypes = [ctypes.c_void_p]


class Listing:
    """One open directory stream, read as far as the caller says."""

    def __init__(self, path):
        self.dir = libc.opendir(path.encode())
        assert self.dir, os.strerror(ctypes.get_errno())
        self.total = 0

    def read(self, count=None):
        """The next `count` names (all that are left without it). A
        listing that does not end fails (instead of hanging the test)."""
        names = []
        while count is None or len(names) < count:
            self.total += 1
            if self.total > 10 * RECORDS:
                self.close()  # or the mount stays busy
                raise AssertionError("the listing does not end: %s" % names[-3:])
            ctypes.set_errno(0)
            entry = libc.readdir(self.dir)
            if not entry:
                assert ctypes.get_errno() == 0, os.strerror(ctypes.get_errno())
                break
            name = entry.contents.d_name.decode()
            if name not in (".", ".."):
                names.append(name)
        return names

    def close(self):
        if self.dir:
            libc.closedir(self.dir)
            self.dir = None


def list_all(path):
    listing = Listing(path)
    names = listing.read()
    listing.close()
    return names


def fill(idb, tmp_path, keys):
    lines = tmp_path / "records.jsonl"
    with open(lines, "w") as f:
        for k in keys:
            f.write(json.dumps({"key": k, "value": {"n": k, "pad": "x" * (k % 50)}}) + "\n")
    idb.ctl("import", "alice/shop/orders", str(lines))


def name(key):
    return "%d.json" % key


def check_sizes(store):
    """What `ls -l` shows (the listing's attributes) is what the files hold."""
    out = sh("ls -l", cwd=store).stdout.splitlines()[1:]
    for line in out:
        size, fname = int(line.split()[4]), line.split()[-1]
        with open(os.path.join(store, fname), "rb") as f:
            assert len(f.read()) == size, line


def test_a_large_store_lists_whole_and_once(idb, tmp_path):
    fill(idb, tmp_path, range(RECORDS))
    want = sorted(name(k) for k in range(RECORDS))
    for _ in range(2):  # from the daemon, then from the kernel's cache
        listing = Listing(idb.store)
        got = []
        while True:
            part = listing.read(37)
            got += part
            if len(part) < 37:
                break
        listing.close()
        assert sorted(got) == want and len(got) == len(set(got))
    check_sizes(idb.store)


def test_changes_made_elsewhere_while_listing(idb, tmp_path):
    fill(idb, tmp_path, range(RECORDS))
    assert len(list_all(idb.store)) == RECORDS  # the kernel caches this listing
    listing = Listing(idb.store)
    first = listing.read(700)
    # Records already listed and records still ahead: removed, rewritten
    # with other sizes; new ones made.
    gone = [k for k in range(0, RECORDS, 97)]
    rewritten = [k for k in range(5, RECORDS, 89) if k not in gone]
    for k in gone:
        idb.ctl("rm", "alice/shop/orders", str(k))
    fill(idb, tmp_path, rewritten + list(range(RECORDS, RECORDS + 300)))
    rest = listing.read()
    listing.close()
    got = first + rest
    assert len(got) == len(set(got)), "a name was listed twice"
    for k in range(RECORDS):
        if k not in gone:
            assert name(k) in got, name(k)
    final = sorted(list_all(idb.store))
    assert final == sorted(name(k) for k in range(RECORDS + 300) if k not in gone)
    check_sizes(idb.store)


def test_changes_through_the_mount_while_listing(idb, tmp_path):
    fill(idb, tmp_path, range(RECORDS))
    listing = Listing(idb.store)
    first = listing.read(500)
    moved = {10: 100000, 1500: 100001}  # one listed already, one ahead
    for old, new in moved.items():
        os.rename(os.path.join(idb.store, name(old)), os.path.join(idb.store, name(new)))
    gone = [3, 1700]
    for k in gone:
        os.unlink(os.path.join(idb.store, name(k)))
    for k in (7, 1900):
        with open(os.path.join(idb.store, name(k)), "w") as f:
            f.write(json.dumps({"n": k, "longer": "y" * 200}))
    for k in range(RECORDS, RECORDS + 50):
        with open(os.path.join(idb.store, name(k)), "w") as f:
            f.write("{}")
    rest = listing.read()
    listing.close()
    got = first + rest
    assert len(got) == len(set(got)), "a name was listed twice"
    for k in range(RECORDS):
        if k not in gone and k not in moved:
            assert name(k) in got, name(k)
    for old, new in moved.items():  # one inode, under one name or the other
        assert (name(old) in got) != (name(new) in got), (old, new)
    final = set(list_all(idb.store))
    assert len(final) == RECORDS - len(gone) + 50
    assert name(100000) in final and name(10) not in final
    check_sizes(idb.store)
