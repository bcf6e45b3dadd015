"""The test peers are strict: each rule they enforce is shown to catch the
thing it is about (a check that cannot fail proves nothing)."""
import json
import os
import time
import urllib.error
import urllib.parse
import urllib.request

from conftest import wait_for
from flume_spooldir import SpoolConsumer
from peers import FlumeHttpPeer, HdfsConsumer, WebHdfsPeer, hdfs_valid_name


def consume(tmp_path, files, max_line=2048, change=None):
    c = SpoolConsumer(tmp_path)
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    c.sweep()  # sees them
    if change:
        change()
    c.sweep()  # takes them
    return c


def test_spool_consumer_takes_good_files_and_skips_hidden(tmp_path):
    c = consume(tmp_path, {"a.jsonl": b'{"a":1}\n{"b":2}\n', ".a.jsonl.tmp": b"partial"})
    assert c.failures == []
    assert c.lines == ['{"a":1}', '{"b":2}']
    assert sorted(os.listdir(tmp_path)) == [".a.jsonl.tmp", "a.jsonl.COMPLETED"]


def test_spool_consumer_catches_a_file_changed_after_it_appeared(tmp_path):
    def grow():
        with open(tmp_path / "a.jsonl", "ab") as f:
            f.write(b'{"c":3}\n')
    c = consume(tmp_path, {"a.jsonl": b'{"a":1}\n'}, change=grow)
    assert any("changed" in f for f in c.failures), c.failures


def test_spool_consumer_catches_a_reused_name(tmp_path):
    c = consume(tmp_path, {"a.jsonl": b'{"a":1}\n'})
    (tmp_path / "a.jsonl").write_bytes(b'{"a":1}\n')
    c.sweep()
    assert any("name re-used" in f for f in c.failures), c.failures


def test_spool_consumer_catches_bad_content(tmp_path):
    c = consume(tmp_path, {
        "long.jsonl": b'"' + b"x" * 3000 + b'"\n',
        "utf8.jsonl": b'{"a":"\xff"}\n',
        "blank.jsonl": b'{"a":1}\n\n{"b":2}\n',
        "empty.jsonl": b"",
        "nonl.jsonl": b'{"a":1}',
        "cr.jsonl": b'{"a":1}\r\n',
    })
    text = "\n".join(c.failures)
    for words in ["long.jsonl:1: 3002 characters, over 2048", "utf8.jsonl: invalid UTF-8",
                  "blank.jsonl:2: blank line", "empty.jsonl is empty",
                  "nonl.jsonl does not end with a newline", "cr.jsonl:1: carriage return"]:
        assert words in text, (words, text)


BATCH = {"X-Idbmount-Batch": "b-1-1", "X-Idbmount-First-Seq": "1",
         "X-Idbmount-Last-Seq": "1", "X-Idbmount-Count": "1"}


def post(url, body, ctype="application/json; charset=UTF-8", batch=BATCH):
    req = urllib.request.Request(url, data=body, method="POST",
                                 headers=dict(batch, **{"Content-Type": ctype}))
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def test_flume_peer_checks_the_jsonhandler_body():
    with FlumeHttpPeer() as peer:
        line = '{"seq":1,"op":"put"}'
        good = json.dumps([{"headers": {"seq": "1"}, "body": line}]).encode()
        assert post(peer.url, good) == 200
        assert peer.events == [line]
        assert post(peer.url, b"[{") == 400                        # not JSON
        assert post(peer.url, b'{"headers":{},"body":"x"}') == 400  # not an array
        assert post(peer.url, json.dumps([{"body": 5, "headers": {}}]).encode()) == 400
        assert post(peer.url, json.dumps([{"headers": {"a": 1}, "body": "x"}]).encode()) == 400
        assert post(peer.url, json.dumps([{"headers": {}, "body": "x", "extra": 1}]).encode()) == 400
        assert post(peer.url, good, ctype="text/plain") == 400
        assert len(peer.errors) == 6
        peer.answer_next(503, 1)
        assert post(peer.url, good) == 503
        assert post(peer.url, good) == 200
        assert len(peer.events) == 2 and peer.duplicates == 1


def test_flume_peer_checks_the_batch_headers():
    with FlumeHttpPeer() as peer:
        line = '{"seq":1,"op":"put"}'
        good = json.dumps([{"headers": {"seq": "1"}, "body": line}]).encode()
        assert post(peer.url, good, batch={}) == 400
        assert "no X-Idbmount-Batch" in peer.errors[-1]
        assert post(peer.url, good, batch=dict(BATCH, **{"X-Idbmount-Count": "2"})) == 400
        assert post(peer.url, good, batch=dict(BATCH, **{"X-Idbmount-Last-Seq": "7"})) == 400
        assert post(peer.url, good, batch=dict(BATCH, **{"X-Idbmount-First-Seq": "x"})) == 400
        assert len(peer.errors) == 4 and peer.events == []
        assert post(peer.url, good) == 200
        other = json.dumps([{"headers": {"seq": "1"}, "body": '{"seq":1,"op":"delete"}'}])
        assert post(peer.url, other.encode()) == 400
        assert "sent again with another body" in peer.errors[-1]
        # A deduping receiver answers 200 to a repeat and keeps one copy.
        peer.dedupe = True
        assert post(peer.url, good) == 200
        assert peer.events == [line] and peer.duplicates == 1


def test_webhdfs_peer_is_strict(tmp_path):
    with WebHdfsPeer(tmp_path) as hdfs:
        def req(method, path, query, data=None, follow=True, ctype=None):
            url = "%s/webhdfs/v1%s?%s" % (hdfs.url, path, query)
            r = urllib.request.Request(url, data=data, method=method)
            if ctype:
                r.add_header("Content-Type", ctype)

            class NoRedirect(urllib.request.HTTPRedirectHandler):
                def redirect_request(self, *a, **k):
                    return None
            opener = urllib.request.build_opener(NoRedirect)
            try:
                with opener.open(r, timeout=10) as resp:
                    return resp.status, resp.headers, resp.read()
            except urllib.error.HTTPError as e:
                return e.code, e.headers, e.read()
        st, headers, _ = req("PUT", "/d/f", "op=CREATE&user.name=u", data=b"")
        assert st == 307
        loc = headers["Location"]
        assert ":%d/" % hdfs.datanode_port in loc and hdfs.datanode_port != hdfs.port
        # The DataNode wants the octet-stream type.
        r = urllib.request.Request(loc, data=b"x\n", method="PUT")
        try:
            urllib.request.urlopen(r, timeout=10)
            assert False, "accepted a PUT without Content-Type octet-stream"
        except urllib.error.HTTPError as e:
            assert e.code == 400
        r = urllib.request.Request(loc, data=b"x\n", method="PUT",
                                   headers={"Content-Type": "application/octet-stream"})
        assert urllib.request.urlopen(r, timeout=10).status == 201
        assert (tmp_path / "d" / "f").read_bytes() == b"x\n"
        # overwrite defaults to false: an existing file is refused.
        st, headers, _ = req("PUT", "/d/f", "op=CREATE&user.name=u", data=b"")
        r = urllib.request.Request(headers["Location"], data=b"y\n", method="PUT",
                                   headers={"Content-Type": "application/octet-stream"})
        try:
            urllib.request.urlopen(r, timeout=10)
            assert False
        except urllib.error.HTTPError as e:
            assert e.code == 403
            assert json.loads(e.read())["RemoteException"]["exception"] == "FileAlreadyExistsException"
        (tmp_path / "d" / "g").write_bytes(b"")
        st, _, body = req("PUT", "/d/f", "op=RENAME&destination=/d/g&user.name=u", data=b"")
        assert st == 200 and json.loads(body) == {"boolean": False}
        st, _, body = req("GET", "/d/nope", "op=GETFILESTATUS&user.name=u")
        assert st == 404 and "FileNotFoundException" in body.decode()
        st, _, body = req("PUT", "/d/f", "op=CREATE", data=b"")
        assert st == 401  # no user.name
        hdfs.httpfs = True
        st, _, _ = req("PUT", "/d/h", "op=CREATE&user.name=u", data=b"z\n",
                       ctype="application/octet-stream")
        assert st == 400  # HttpFS wants data=true
        st, _, _ = req("PUT", "/d/h", "op=CREATE&data=true&user.name=u", data=b"z\n",
                       ctype="application/octet-stream")
        assert st == 201 and (tmp_path / "d" / "h").read_bytes() == b"z\n"


def hdfs_request(hdfs, method, path, query, data=None, timeout=10):
    url = "%s/webhdfs/v1%s?%s" % (hdfs.url, urllib.parse.quote(path), query)
    r = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(r, timeout=timeout) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def test_webhdfs_peer_refuses_names_as_hdfs_does(tmp_path):
    """DFSUtil.isValidName: ':' in a name part, '.' and '..', '//'."""
    assert hdfs_valid_name("/data/idb/2026/12") and hdfs_valid_name("/data/idb/")
    assert hdfs_valid_name("/") and hdfs_valid_name("/a/.hidden")
    for bad in ["/data/12:30", "/data/./x", "/data/../x", "/data//x", "relative", "/a:b"]:
        assert not hdfs_valid_name(bad), bad
    with WebHdfsPeer(tmp_path) as hdfs:
        st, body = hdfs_request(hdfs, "PUT", "/data/12:30", "op=MKDIRS&user.name=u", b"")
        assert st == 400
        assert body["RemoteException"]["exception"] == "InvalidPathException"
        assert body["RemoteException"]["message"] == "Invalid path name /data/12:30"
        assert not (tmp_path / "data").exists()
        assert hdfs_request(hdfs, "PUT", "/data/x", "op=MKDIRS&user.name=u", b"") == \
            (200, {"boolean": True})
        (tmp_path / "data" / "f").write_text("x\n")
        st, body = hdfs_request(hdfs, "PUT", "/data/f",
                                "op=RENAME&destination=/data/a:b&user.name=u", b"")
        assert st == 400 and body["RemoteException"]["exception"] == "InvalidPathException"
        st, body = hdfs_request(hdfs, "GET", "/data/a:b", "op=GETFILESTATUS&user.name=u")
        assert st == 400
        # The DataNode's CREATE refuses it too (the NameNode only redirects).
        st, _ = hdfs_request(hdfs, "PUT", "/data/c:d", "op=CREATE&noredirect=true&user.name=u",
                             b"")
        assert st == 200
        loc = "http://127.0.0.1:%d/webhdfs/v1/data/c%%3Ad?op=CREATE&user.name=u" % \
            hdfs.datanode_port
        r = urllib.request.Request(loc, data=b"x\n", method="PUT",
                                   headers={"Content-Type": "application/octet-stream"})
        try:
            urllib.request.urlopen(r, timeout=10)
            assert False, "created a file HDFS would refuse"
        except urllib.error.HTTPError as e:
            assert e.code == 400
        assert sorted(os.listdir(tmp_path / "data")) == ["f", "x"]


def test_webhdfs_peer_lists_and_deletes(tmp_path):
    with WebHdfsPeer(tmp_path) as hdfs:
        (tmp_path / "d" / "sub").mkdir(parents=True)
        (tmp_path / "d" / "a").write_text("aa\n")
        st, body = hdfs_request(hdfs, "GET", "/d", "op=LISTSTATUS&user.name=u")
        assert st == 200
        entries = body["FileStatuses"]["FileStatus"]
        assert [(e["pathSuffix"], e["type"], e["length"]) for e in entries] == \
            [("a", "FILE", 3), ("sub", "DIRECTORY", 0)]
        st, body = hdfs_request(hdfs, "GET", "/nope", "op=LISTSTATUS&user.name=u")
        assert st == 404 and body["RemoteException"]["exception"] == "FileNotFoundException"
        assert hdfs_request(hdfs, "DELETE", "/d/a", "op=DELETE&recursive=false&user.name=u") == \
            (200, {"boolean": True})
        assert hdfs_request(hdfs, "DELETE", "/d/a", "op=DELETE&recursive=false&user.name=u") == \
            (200, {"boolean": False})
        (tmp_path / "d" / "sub" / "x").write_text("x\n")
        st, body = hdfs_request(hdfs, "DELETE", "/d", "op=DELETE&recursive=false&user.name=u")
        assert st == 403
        assert body["RemoteException"]["exception"] == "PathIsNotEmptyDirectoryException"
        assert (tmp_path / "d" / "sub" / "x").exists()


def test_webhdfs_peer_late_answers_and_slow_writes(tmp_path):
    """"late": done at once, answered after late_s (the client has given
    up); "slow": done after late_s."""
    with WebHdfsPeer(tmp_path) as hdfs:
        hdfs.late_s = 1.0
        (tmp_path / "d").mkdir()
        (tmp_path / "d" / ".f.tmp").write_text("x\n")
        hdfs.script("PUBLISH", ["late"])
        try:
            hdfs_request(hdfs, "PUT", "/d/.f.tmp", "op=RENAME&destination=/d/f&user.name=u",
                         b"", timeout=0.3)
            assert False, "answered in time"
        except (TimeoutError, urllib.error.URLError):
            pass
        assert (tmp_path / "d" / "f").exists()  # done all the same
        hdfs.script("DATANODE", ["slow"])
        loc = "http://127.0.0.1:%d/webhdfs/v1/d/g?op=CREATE&user.name=u" % hdfs.datanode_port
        r = urllib.request.Request(loc, data=b"g\n", method="PUT",
                                   headers={"Content-Type": "application/octet-stream"})
        try:
            urllib.request.urlopen(r, timeout=0.3)
            assert False, "answered in time"
        except (TimeoutError, urllib.error.URLError):
            pass
        assert not (tmp_path / "d" / "g").exists()
        wait_for("the slow write", (tmp_path / "d" / "g").exists)


def test_hdfs_consumer_takes_published_files_and_sees_a_name_published_again(tmp_path):
    with WebHdfsPeer(tmp_path) as hdfs:
        consumer = HdfsConsumer(hdfs, "/d", mode="move", delay=0.1)
        (tmp_path / "d").mkdir()

        def publish(body):
            (tmp_path / "d" / ".f.tmp").write_bytes(body)
            assert hdfs_request(hdfs, "PUT", "/d/.f.tmp",
                                "op=RENAME&destination=/d/f&user.name=u", b"") == \
                (200, {"boolean": True})
        publish(b'{"seq":1}\n')
        assert consumer.wait_idle()
        assert not (tmp_path / "d" / "f").exists()
        assert (tmp_path / "archive" / "d" / "f").exists()
        assert consumer.lines() == ['{"seq":1}'] and consumer.republished == []
        publish(b'{"seq":1}\n')  # the same name again, after it was taken
        assert consumer.wait_idle()
        assert consumer.republished == ["/d/f"]
        assert consumer.lines() == ['{"seq":1}', '{"seq":1}']
        # Hidden names are not taken.
        (tmp_path / "d" / ".g.tmp").write_text("x\n")
        hdfs_request(hdfs, "PUT", "/d/.g.tmp", "op=RENAME&destination=/d/.g&user.name=u", b"")
        assert consumer.wait_idle() and len(consumer.taken) == 2
