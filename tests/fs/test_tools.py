"""Real shell tools on a real mount: what people do with the tree."""
import errno
import json
import os

import pytest

from conftest import sh


def put(idb, key, value, store="alice/shop/orders"):
    idb.ctl("put", store, json.dumps(key), json.dumps(value))


def test_ls_cat_stat_sizes_are_exact(idb):
    put(idb, 1, {"item": "tea", "qty": 2})
    put(idb, "alice", {"name": "Alice"})
    out = sh("ls -l", cwd=idb.store).stdout
    assert "1.json" in out and "alice.json" in out
    for name in ("1.json", "alice.json"):
        path = os.path.join(idb.store, name)
        content = sh("cat " + name, cwd=idb.store).stdout
        size = int(sh("stat -c %s " + name, cwd=idb.store).stdout)
        assert size == len(content.encode()) == os.stat(path).st_size
        assert content.endswith("\n")
    assert json.loads(sh("cat 1.json", cwd=idb.store).stdout) == \
        {"item": "tea", "qty": 2}


def test_inode_stable_for_the_life_of_a_record(idb):
    put(idb, 7, {"v": 1})
    path = os.path.join(idb.store, "7.json")
    ino = os.stat(path).st_ino
    sh("echo '{\"v\": 2}' > 7.json", cwd=idb.store)
    put(idb, 7, {"v": 3})
    assert os.stat(path).st_ino == ino
    sh("mv 7.json 8.json", cwd=idb.store)
    assert os.stat(os.path.join(idb.store, "8.json")).st_ino == ino


def test_grep_find_jq(idb):
    for i in range(20):
        put(idb, i, {"n": i, "status": "open" if i % 2 else "closed"})
    out = sh("grep -rl '\"open\"' .", cwd=idb.path("alice")).stdout.split()
    assert len(out) == 10
    assert sh("grep -rc closed . | grep -c ':1$'",
              cwd=idb.path("alice")).stdout.strip() == "10"
    found = sh("find . -name '*.json' | sort", cwd=idb.mnt).stdout.split()
    assert len(found) == 20
    assert "./alice/shop/orders/3.json" in found
    assert sh("find . -type d | sort", cwd=idb.mnt).stdout.split() == \
        [".", "./alice", "./alice/shop", "./alice/shop/orders"]
    total = sh("jq -s 'map(.n) | add' *.json", cwd=idb.store).stdout
    assert int(total) == sum(range(20))


def test_grep_many_records_right_after_mount(idb, tmp_path):
    # The kernel reads ahead asynchronously and may close a file (RELEASE on
    # another daemon thread) while the daemon is still returning from the
    # READ reply: this once crashed the daemon on the first grep after mount.
    lines = tmp_path / "many.jsonl"
    with open(lines, "w") as f:
        for i in range(3000):
            f.write(json.dumps({"key": i, "value": {"n": i, "pad": "x" * 300,
                    "tag": "even" if i % 2 == 0 else "odd"}}) + "\n")
    idb.ctl("import", "alice/shop/orders", str(lines))
    idb.daemon.stop()
    idb.daemon.start()
    for _ in range(2):
        out = sh("grep -rc even .", cwd=idb.store).stdout.splitlines()
        assert len(out) == 3000
        assert sum(int(line.rsplit(":", 1)[1]) for line in out) == 1500


def test_echo_redirect_and_tee_append(idb):
    sh("echo '{\"a\": 1}' > 5.json", cwd=idb.store)
    assert json.loads(open(os.path.join(idb.store, "5.json")).read()) == {"a": 1}
    # tee -a onto a record that stays valid JSON: a JSON text then spaces.
    sh("printf '  ' | tee -a 5.json", cwd=idb.store)
    assert open(os.path.join(idb.store, "5.json")).read() == '{"a": 1}\n  '
    # tee -a that breaks the JSON is refused at close; the record stays.
    p = sh("echo '{\"b\": 2}' | tee -a 5.json", cwd=idb.store, check=False)
    assert p.returncode != 0 and "Invalid argument" in p.stderr
    assert open(os.path.join(idb.store, "5.json")).read() == '{"a": 1}\n  '
    # A scratch file (not .json) takes anything.
    sh("echo hello | tee -a notes.txt && echo world >> notes.txt", cwd=idb.store)
    assert open(os.path.join(idb.store, "notes.txt")).read() == "hello\nworld\n"


def test_sed_in_place(idb):
    put(idb, 1, {"status": "new"})
    sh("sed -i 's/\"new\"/\"paid\"/' 1.json", cwd=idb.store)
    assert json.loads(open(os.path.join(idb.store, "1.json")).read()) == \
        {"status": "paid"}
    # sed's temp file was a scratch file: no trace left, one revision.
    assert sorted(os.listdir(idb.store)) == ["1.json"]
    changes = [c for c in idb.changes() if c["key"] == 1]
    assert [c["op"] for c in changes] == ["put", "put"]
    assert changes[-1]["value"] == {"status": "paid"}
    assert changes[-1]["origin"] == "fs"


def test_vim_edits_a_record(idb):
    put(idb, 2, {"status": "new"})
    sh("vim -Es -u NONE -i NONE -c '%s/new/done/' -c 'wq' 2.json", cwd=idb.store,
       env=dict(os.environ, HOME=str(idb.root)))
    assert json.loads(open(os.path.join(idb.store, "2.json")).read()) == \
        {"status": "done"}
    assert sorted(os.listdir(idb.store)) == ["2.json"]


def test_vim_swap_file_and_rewrite_in_place(idb):
    put(idb, 3, {"v": "a"})
    # vim makes .3.json.swp (O_EXCL, a scratch file), then rewrites 3.json
    # in place (open without O_TRUNC, write, ftruncate) and removes the swap.
    sh("vim -Es -u NONE -i NONE -c 'set swapfile backupcopy=yes' "
       "-c '%s/a/bb/' -c 'wq' 3.json", cwd=idb.store,
       env=dict(os.environ, HOME=str(idb.root)))
    assert json.loads(open(os.path.join(idb.store, "3.json")).read()) == {"v": "bb"}
    assert os.listdir(idb.store) == ["3.json"]
    assert [c["op"] for c in idb.changes()] == ["put", "put"]


def test_emacs_style_backup_rename(idb):
    put(idb, 4, {"v": 1})
    # Emacs: rename the original to name~, write a new file under the name.
    sh("mv 4.json 4.json~ && printf '{\"v\": 2}\\n' > 4.json", cwd=idb.store)
    assert json.loads(open(os.path.join(idb.store, "4.json")).read()) == {"v": 2}
    assert json.loads(open(os.path.join(idb.store, "4.json~")).read()) == {"v": 1}
    rev = sh("getfattr --only-values -n user.idbmount.rev 4.json",
             cwd=idb.store).stdout
    assert int(rev) == 3  # put, delete (the rename away), put: history kept


def test_mv_over_existing_record(idb):
    put(idb, 1, {"v": "one"})
    put(idb, 2, {"v": "two"})
    sh("mv 1.json 2.json", cwd=idb.store)
    assert sorted(os.listdir(idb.store)) == ["2.json"]
    assert json.loads(open(os.path.join(idb.store, "2.json")).read()) == {"v": "one"}
    last = idb.changes()[-2:]
    assert {(c["key"], c["op"]) for c in last} == {(2, "put"), (1, "delete")}


def test_rm_mkdir_rmdir(idb):
    put(idb, 9, {"v": 9})
    sh("rm 9.json", cwd=idb.store)
    assert os.listdir(idb.store) == []
    assert idb.changes()[-1]["op"] == "delete"
    assert "value" not in idb.changes()[-1]
    sh("mkdir -p alice/crm/contacts", cwd=idb.mnt)
    assert os.path.isdir(idb.path("alice", "crm", "contacts"))
    p = sh("rmdir alice/shop/orders", cwd=idb.mnt, check=True)
    assert p.returncode == 0
    put(idb, 1, {"v": 1}, store="alice/crm/contacts")
    p = sh("rmdir alice/crm/contacts", cwd=idb.mnt, check=False)
    assert p.returncode != 0 and "not empty" in p.stderr
    sh("rm alice/crm/contacts/1.json && rmdir alice/crm/contacts alice/crm",
       cwd=idb.mnt)
    assert sorted(os.listdir(idb.path("alice"))) == ["shop"]


def test_truncate(idb):
    put(idb, 1, {"v": 1})
    p = sh("truncate -s 0 1.json", cwd=idb.store, check=False)
    assert p.returncode != 0 and "Invalid argument" in p.stderr
    assert json.loads(open(os.path.join(idb.store, "1.json")).read()) == {"v": 1}
    sh("printf '[1,2,3]   ' > 1.json && truncate -s 7 1.json", cwd=idb.store)
    assert open(os.path.join(idb.store, "1.json")).read() == "[1,2,3]"
    sh("echo scratch > s.txt && truncate -s 3 s.txt", cwd=idb.store)
    assert open(os.path.join(idb.store, "s.txt")).read() == "scr"


def test_cp_in_and_out_tar_rsync(idb, tmp_path):
    src = tmp_path / "src"
    (src / "shop" / "orders").mkdir(parents=True)
    for i in range(5):
        (src / "shop" / "orders" / ("%d.json" % i)).write_text(
            json.dumps({"i": i}) + "\n")
    sh("cp -r %s/shop/orders/. %s/" % (src, idb.store))
    assert sorted(os.listdir(idb.store)) == ["%d.json" % i for i in range(5)]
    out = tmp_path / "out"
    sh("cp -r %s %s" % (idb.store, out))
    sh("diff -r %s/shop/orders %s" % (src, out))
    sh("cp -p %s/0.json %s/10.json" % (out, idb.store))
    sh("tar -C %s -cf %s/t.tar ." % (idb.store, tmp_path))
    listing = sh("tar -tf %s/t.tar" % tmp_path).stdout.split()
    assert "./10.json" in listing and "./4.json" in listing
    # rsync -a both ways; rsync writes temp files and renames them.
    sh("mkdir -p %s/alice/backup/orders" % idb.mnt)
    sh("rsync -a %s/ %s/alice/backup/orders/" % (out, idb.mnt))
    sh("diff -r %s %s/alice/backup/orders" % (out, idb.mnt))
    back = tmp_path / "back"
    sh("rsync -a %s/ %s/" % (idb.store, back))
    sh("diff -r %s %s" % (idb.store, back))
    # tar extraction into the mount.
    sh("mkdir -p %s/alice/restore/orders && tar -C %s/alice/restore/orders -xf %s/t.tar"
       % (idb.mnt, idb.mnt, tmp_path))
    sh("diff -r %s %s/alice/restore/orders" % (idb.store, idb.mnt))


def test_getfattr(idb):
    idb.ctl("mkstore", "alice/shop/users", "--keypath", '"id"')
    idb.ctl("put", "alice/shop/users", "5", '{"id": 5, "name": "x"}')
    out = sh("getfattr -d users/5.json", cwd=idb.path("alice", "shop")).stdout
    assert 'user.idbmount.rev="1"' in out
    assert 'user.idbmount.origin="import"' in out
    assert "user.idbmount.seq=" in out
    out = sh("getfattr -d users", cwd=idb.path("alice", "shop")).stdout
    assert 'user.idbmount.keypath="\\"id\\""' in out
    assert 'user.idbmount.autoincrement="false"' in out
    p = sh("setfattr -n user.idbmount.rev -v 9 users/5.json",
           cwd=idb.path("alice", "shop"), check=False)
    assert p.returncode != 0 and "Operation not permitted" in p.stderr
    # no SELinux labels here: "not supported", so `ls -l` asks once per
    # listing, not once per file; any other name is simply absent
    p = sh("getfattr -n security.selinux users/5.json", cwd=idb.path("alice", "shop"),
           check=False)
    assert p.returncode != 0 and "Operation not supported" in p.stderr, p.stderr
    p = sh("getfattr -n user.other users/5.json", cwd=idb.path("alice", "shop"), check=False)
    assert p.returncode != 0 and "No such attribute" in p.stderr, p.stderr


def test_ls_l_asks_for_acls_once_per_listing(idb, tmp_path):
    # The mount has no POSIX ACLs and says so: "not supported", after which
    # `ls -l` asks no other file of the mount. "No such attribute" made it
    # ask every file, each a round trip to the daemon: with 100,000 records
    # more than half the time of a cold `ls -l`.
    lines = tmp_path / "many.jsonl"
    with open(lines, "w") as f:
        for i in range(300):
            f.write(json.dumps({"key": i, "value": {"n": i}}) + "\n")
    idb.ctl("import", "alice/shop/orders", str(lines))
    for name in ("system.posix_acl_access", "system.posix_acl_default"):
        for path in (os.path.join(idb.store, "7.json"), idb.store):
            with pytest.raises(OSError) as e:
                os.getxattr(path, name)
            assert e.value.errno == errno.ENOTSUP, (path, name)
    trace = tmp_path / "ls.strace"
    out = sh("strace -qq -e trace=getxattr,lgetxattr -o %s ls -l ." % trace,
             cwd=idb.store).stdout
    assert len(out.splitlines()) == 301  # "total" and every record
    calls = [line for line in trace.read_text().splitlines() if "getxattr(" in line]
    assert 1 <= len(calls) <= 2, calls  # one label, one ACL, at most
    # what a copy that keeps ACLs does with a mount that has none
    sh("cp -a 7.json %s" % tmp_path, cwd=idb.store)
    assert json.loads((tmp_path / "7.json").read_text()) == {"n": 7}


def test_numbers_past_64_bit_integers_go_round(idb, tmp_path):
    """JSON.stringify writes 1e19 as 10000000000000000000, which no 64-bit
    integer holds; JavaScript reads it back as the double it was. So does
    idbmount: a record file holding one is written back unchanged, and the
    change lines `log` prints import again."""
    idb.ctl("put", "alice/shop/orders", "1", '{"n": 1e19, "m": -12345678901234567890}')
    path = os.path.join(idb.store, "1.json")
    text = open(path).read()
    assert text == '{\n  "n": 10000000000000000000,\n  "m": -12345678901234567000\n}\n'
    with open(path, "w") as f:
        f.write(text.replace("}", ', "k": 1}'))
    assert json.loads(open(path).read())["k"] == 1
    log = tmp_path / "log.jsonl"
    log.write_text(idb.ctl("log", "--since", "0").stdout)
    idb.ctl("import", "alice/shop/copy", str(log))
    assert open(idb.path("alice", "shop", "copy", "1.json")).read() == (
        '{\n  "n": 10000000000000000000,\n  "m": -12345678901234567000,\n  "k": 1\n}\n')
