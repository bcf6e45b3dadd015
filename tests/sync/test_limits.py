"""What a request body may cost the daemon: a route that takes no body
refuses one before reading it, a body is read only after its token passed,
and all bodies being read at once share one budget (--max-buffered): a push
past it gets 503 with Retry-After. The daemon's memory stays bounded under
connections that send 32 MiB bodies (its VmHWM, read from /proc)."""
import json
import os
import socket
import sqlite3
import subprocess
import threading

import pytest

from conftest import Daemon, Sync, assert_error, fs_conftest, put, wait_for

ORDERS = [{"name": "orders"}]
MiB = 1024 * 1024


def status_of(pid):
    """VmRSS and VmHWM of process `pid`, in bytes."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0]) * 1024
    return out


def reset_peak(pid):
    """Makes VmHWM start again from the current RSS (Linux clear_refs 5)."""
    with open("/proc/%d/clear_refs" % pid, "w") as f:
        f.write("5")


def request_head(port, method, path, headers):
    lines = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1:%d" % port]
    lines += ["%s: %s" % kv for kv in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


def read_answer(sock):
    """The status and JSON body of the one answer on `sock` (the socket's
    timeout is the deadline)."""
    got = b""
    while b"\r\n\r\n" not in got:
        data = sock.recv(65536)
        if not data:
            break
        got += data
    head, _, rest = got.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        data = sock.recv(65536)
        if not data:
            break
        rest += data
    return status, headers, rest[:length]


def send_body(sock, size, chunked):
    """Sends `size` bytes of body (stopping quietly once the daemon closed
    the connection, as it may after answering early)."""
    piece = b"x" * MiB
    try:
        sent = 0
        while sent < size:
            n = min(len(piece), size - sent)
            if chunked:
                sock.sendall(b"%x\r\n%s\r\n" % (n, piece[:n]))
            else:
                sock.sendall(piece[:n])
            sent += n
        if chunked:
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass


NO_BODY_ROUTES = ["/healthz", "/metrics", "/", "/idbmount.js", "/v1/pull?since=0",
                  "/v1/changes?since=0", "/v1/events?since=0", "/nothing/here"]


@pytest.mark.parametrize("path", NO_BODY_ROUTES)
@pytest.mark.parametrize("chunked", [False, True])
def test_a_route_that_takes_no_body_refuses_one_unread(sync, path, chunked):
    """Only the headers go out: the answer comes without the body."""
    s = sync.raw(timeout=20)
    framing = {"Transfer-Encoding": "chunked"} if chunked else {"Content-Length": str(32 * MiB)}
    s.sendall(request_head(sync.port, "GET", path,
                           dict(framing, Authorization="Bearer " + sync.tokens["alice"])))
    status, headers, body = read_answer(s)
    s.close()
    want = 404 if path == "/nothing/here" else 413
    assert status == want, body
    assert headers["content-type"] == "application/json"
    doc = json.loads(body)
    assert set(doc) == {"error", "detail"}
    if want == 413:
        assert doc["error"] == "payload_too_large" and "no request body" in doc["detail"], doc


def test_a_body_is_not_read_before_its_token_passed(sync):
    s = sync.raw(timeout=20)
    s.sendall(request_head(sync.port, "POST", "/v1/push",
                           {"Content-Length": str(32 * MiB), "Authorization": "Bearer " + "0" * 64}))
    status, _, body = read_answer(s)
    s.close()
    assert status == 401 and json.loads(body)["error"] == "unauthorized"


def test_memory_stays_bounded_under_connections_sending_32_mib_bodies(sync):
    """16 connections at once, each sending 32 MiB (the default --max-body)
    to a route that needs no token, or to /v1/push without one."""
    pid = sync.daemon.proc.pid
    kinds = [("GET", "/healthz", False), ("GET", "/idbmount.js", True),
             ("GET", "/", False), ("POST", "/v1/push", False)]
    answers = []

    def attack(method, path, chunked):
        s = sync.raw(timeout=60)
        framing = {"Transfer-Encoding": "chunked"} if chunked else \
            {"Content-Length": str(32 * MiB)}
        s.sendall(request_head(sync.port, method, path, framing))
        send_body(s, 32 * MiB, chunked)
        answers.append(read_answer(s)[0])
        s.close()

    reset_peak(pid)
    before = status_of(pid)["VmRSS"]
    threads = [threading.Thread(target=attack, args=kinds[i % len(kinds)]) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    grown = status_of(pid)["VmHWM"] - before
    assert grown < 48 * MiB, "the daemon's RSS grew by %.1f MiB" % (grown / MiB)
    assert sorted(set(answers)) == [401, 413], answers
    assert sync.anonymous.get("/healthz").status == 200


def push_body(mid, size):
    """A push of one record whose body is `size` bytes long."""
    m = put(mid, "shop", "orders", mid, "")
    pad = size - len(json.dumps({"mutations": [m]}))
    m["value"] = "y" * pad
    body = json.dumps({"mutations": [m]}).encode()
    assert len(body) == size
    return body


def metric(sync, name):
    text = sync.anonymous.get("/metrics").body.decode()
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(name + " is not on /metrics")


def test_bodies_being_read_share_one_budget(start_sync):
    s = start_sync(["--max-body", "1M", "--max-buffered", "2M"])
    s.alice.schema("shop", ORDERS)
    auth = {"Authorization": "Bearer " + s.tokens["alice"]}
    size = 900 * 1024
    held = []
    for mid in ("a", "b"):  # 1800 KiB of the 2 MiB, announced and half sent
        body = push_body(mid, size)
        c = s.raw(timeout=60)
        c.sendall(request_head(s.port, "POST", "/v1/push",
                               dict(auth, **{"Content-Length": str(size)})))
        c.sendall(body[:size // 2])
        held.append((c, body))
    # Both heads are taken in by the daemon's threads in their own time.
    wait_for("both bodies in the budget",
             lambda: metric(s, "idbmount_http_request_body_buffered_bytes") == 2 * size)
    # A third announced body does not fit: 503 at once, nothing read.
    c = s.raw(timeout=20)
    c.sendall(request_head(s.port, "POST", "/v1/push", dict(auth, **{"Content-Length": str(size)})))
    status, headers, body = read_answer(c)
    c.close()
    assert status == 503 and headers["retry-after"] == "1", body
    doc = json.loads(body)
    assert doc["error"] == "unavailable" and "--max-buffered" in doc["detail"], doc
    # A chunked one is refused once it passes the budget.
    c = s.raw(timeout=60)
    c.sendall(request_head(s.port, "POST", "/v1/push",
                           dict(auth, **{"Transfer-Encoding": "chunked"})))
    send_body(c, size, chunked=True)
    status, headers, body = read_answer(c)
    c.close()
    assert status == 503 and headers["retry-after"] == "1", body
    # The two held pushes finish and apply; then the budget is free again.
    for c, body in held:
        c.sendall(body[size // 2:])
        status, _, answer = read_answer(c)
        c.close()
        assert status == 200, answer
    assert sorted(os.listdir(s.path("alice", "shop", "orders"))) == ["a.json", "b.json"]
    wait_for("the budget to be free again",
             lambda: metric(s, "idbmount_http_request_body_buffered_bytes") == 0)
    r = s.alice.post("/v1/push", push_body("c", size))
    assert r.status == 200, r


def test_max_buffered_below_max_body_is_refused(tmp_path):
    d = Daemon(tmp_path / "data", tmp_path / "mnt",
               args=["--max-body", "4M", "--max-buffered", "1M"])
    with pytest.raises(RuntimeError, match="--max-buffered"):
        d.start()


# The WAL's longest: 64 MiB where it should start over, 16 MiB more before
# pushes wait for it, and the ~9 MB push that crossed that line.
WAL_BOUND = 64 * MiB + 16 * MiB + 10 * MiB


def wal_sizes_under_pushes(s, pushes, before_push=lambda n: None):
    """Sends `pushes` pushes of 1,000 ~4 KB values (the WAL grows ~9 MB a
    push) back to back on one keep-alive connection, the bodies encoded
    before. Calls before_push(n) before push n. Returns the WAL's size
    after each push."""
    s.alice.schema("shop", ORDERS)
    wal = os.path.join(s.data, "idbmount.db-wal")
    note = "x" * 3800
    bodies = [json.dumps({"mutations": [
        put("w%d-%d" % (p, i), "shop", "orders", "k%d-%d" % (p, i), {"n": i, "note": note})
        for i in range(1000)]}).encode() for p in range(pushes)]
    conn = s.alice.connection()
    headers = {"Authorization": "Bearer " + s.alice.token,
               "Content-Type": "application/json"}
    sizes = []
    for n, body in enumerate(bodies):
        before_push(n)
        conn.request("POST", "/v1/push", body, headers)
        r = conn.getresponse()
        assert r.status == 200, r.read()
        r.read()
        sizes.append(os.path.getsize(wal))
    conn.close()
    assert len(os.listdir(s.path("alice", "shop", "orders"))) == pushes * 1000
    return sizes


def test_the_wal_starts_over_under_a_steady_stream_of_pushes(sync):
    """The WAL file is copied back into the database by a checkpointer
    thread, but starts over only when a write begins with everything
    copied back: pushes sent back to back never leave such a moment, and it
    grew without end (204 MB after these 24 pushes, 457 MB after 48). Past
    64 MiB the checkpointer makes it start over, queued as a writer, and
    journal_size_limit keeps the file at that size."""
    sizes = wal_sizes_under_pushes(sync, 24)
    assert max(sizes) <= WAL_BOUND, sizes


def test_pushes_wait_for_a_checkpointer_slower_than_they_are(start_sync, tmp_path, monkeypatch):
    """On a disk whose syncs are slow, each checkpoint round took longer than
    the pushes beside it, and the WAL grew by all they wrote meanwhile
    (150 MB seen). 16 MiB past the point where it should start over, new
    pushes wait for the checkpointer. tests/common/faulty_disk.c makes every
    sync of the database file take 400 ms."""
    fs_conftest.preload_faulty_disk(tmp_path, monkeypatch, SLOW_DISK_SYNC_MS=400)
    s = start_sync()
    sizes = wal_sizes_under_pushes(s, 24)
    assert "faulty_disk: a sync of the database waited 400 ms" in s.daemon.stderr()
    assert max(sizes) <= WAL_BOUND, sizes


def test_the_wal_starts_over_once_a_long_reader_has_gone(sync):
    """A reader that holds the WAL (a backup, here a read transaction of
    another process) keeps it from starting over, so it grows while the
    reader stays; once the reader is gone it starts over again, although
    the pushes never stopped."""
    reader = sqlite3.connect(os.path.join(sync.data, "idbmount.db"), isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM records").fetchone()

    def end_the_read_at_20(n):
        if n == 20:
            reader.execute("COMMIT")
            reader.close()

    sizes = wal_sizes_under_pushes(sync, 30, end_the_read_at_20)
    assert sizes[19] > 150 * MiB, sizes  # it grew while the reader was there
    assert sizes[-1] <= WAL_BOUND, sizes


def test_a_full_disk_answers_507_and_keeps_what_it_acknowledged(tmp_path):
    """The data directory on a 3 MiB disk: pushes fill it until one is
    answered 507 insufficient_storage (JSON body); every put acknowledged
    before is stored and pulled back, and the daemon goes on serving."""
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m,mode=0700", "tmpfs", str(data)],
                   check=True)
    s = Sync(tmp_path)
    try:
        s.add_client("alice")
        s.add_client("bob")
        s.start()
        s.alice.schema("shop", ORDERS)
        note = "n" * 10000
        acknowledged, refused = [], None
        for p in range(100):
            body = {"mutations": [put("f%d-%d" % (p, i), "shop", "orders", "k%d-%d" % (p, i),
                                      {"note": note}) for i in range(20)]}
            r = s.alice.post("/v1/push", body)
            if r.status != 200:
                refused = r
                break
            acknowledged += [m["key"] for m in body["mutations"]]
        assert refused is not None, "3 MiB held 2,000 puts of 10 KB"
        assert_error(refused, 507, "insufficient_storage")
        assert acknowledged, "nothing fit on a 3 MiB disk"
        pulled = []
        since = 0
        while True:
            answer = s.alice.pull(since)
            pulled += [c["key"] for c in answer["changes"]]
            since = answer["checkpoint"]
            if not answer["more"]:
                break
        assert sorted(pulled) == sorted(acknowledged)
        assert s.anonymous.get("/healthz").status == 200
    finally:
        fs_conftest.stop_cleanly(s.daemon)
        subprocess.run(["umount", str(data)], check=False)
