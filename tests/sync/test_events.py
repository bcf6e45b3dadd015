"""GET /v1/events: every change of a client's tree, whoever made it (the
mount, idbmountctl, another push), reaches that client's event streams.
Deadlines are generous: the latency itself is measured in tests/bench."""
import os
import resource
import selectors
import threading

from conftest import put, sh, wait_for
from eventstream import EventStream


def shop(sync):
    sync.alice.schema("shop", [{"name": "orders"}])
    sync.alice.push([put("m1", "shop", "orders", "r", {"v": 1})])
    return sync.alice.pull(0)["checkpoint"]


def open_stream(sync, since, **kw):
    s = EventStream(sync.port, sync.tokens["alice"], since=since, **kw)
    s.wait_for(lambda s: s.connected())
    assert s.status_line() == "HTTP/1.1 200 OK"
    assert s.header("content-type") == "text/event-stream"
    return s


def last_seq(sync):
    return sync.changes()[-1]["seq"]


def test_sed_on_the_mount_reaches_the_stream(sync):
    cp = shop(sync)
    s = open_stream(sync, cp)
    assert s.events() == []
    sh("sed -i 's/1/2/' r.json", cwd=sync.path("alice", "shop", "orders"))
    seq = last_seq(sync)
    assert seq > cp
    s.wait_for(lambda s: seq in s.seqs())
    assert s.events()[-1] == {"id": str(seq), "event": "change", "data": '{"seq":%d}' % seq}
    s.close()


def test_idbmountctl_put_reaches_the_stream(sync):
    cp = shop(sync)
    s = open_stream(sync, cp)
    sync.ctl("put", "alice/shop/orders", '"from_ctl"', '{"x": 1}')
    seq = last_seq(sync)
    s.wait_for(lambda s: seq in s.seqs())
    s.close()


def test_another_push_reaches_the_stream(sync):
    cp = shop(sync)
    s = open_stream(sync, cp, query_token=True)
    [res] = sync.alice.push([put("m2", "shop", "orders", "other", 2)])
    s.wait_for(lambda s: res["seq"] in s.seqs())
    s.close()


def test_a_stream_behind_its_client_hears_at_once(sync):
    shop(sync)
    s = open_stream(sync, 0)
    s.wait_for(lambda s: s.seqs() == [last_seq(sync)])
    s.close()


def test_last_event_id_of_a_reconnect_counts_as_since(sync):
    cp = shop(sync)
    s = open_stream(sync, 0, headers=["Last-Event-ID: %d" % cp])
    sync.alice.push([put("m2", "shop", "orders", "x", 2)])
    seq = last_seq(sync)
    s.wait_for(lambda s: s.seqs() == [seq])  # nothing announced for <= cp
    s.close()


def test_quiet_streams_get_keepalive_comments(start_sync):
    sync = start_sync(["--keepalive", "1"])
    s = open_stream(sync, 0)
    s.wait_for(lambda s: s.body.count(b": keep-alive\n\n") >= 2)
    s.close()


def test_streams_end_cleanly_when_the_daemon_stops(sync):
    s = open_stream(sync, 0)
    sync.daemon.stop()
    s.wait_for(lambda s: s.ended)
    s.close()


def daemon_threads_and_rss(sync):
    with open("/proc/%d/status" % sync.daemon.proc.pid) as f:
        status = dict(line.split(":", 1) for line in f if ":" in line)
    return int(status["Threads"]), int(status["VmRSS"].split()[0])


def test_a_thousand_idle_streams_cost_no_threads_and_others_get_answers(sync):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4096:  # this process holds the thousand client sockets
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8192), hard))
    cp = shop(sync)
    threads0, rss0 = daemon_threads_and_rss(sync)
    streams = [EventStream(sync.port, sync.tokens["alice"], since=cp) for _ in range(1000)]
    sel = selectors.DefaultSelector()
    for s in streams:
        sel.register(s, selectors.EVENT_READ, s)

    def pump_until(pred):
        import time
        deadline = time.monotonic() + 120
        while not all(pred(s) for s in streams):
            assert time.monotonic() < deadline, sum(1 for s in streams if pred(s))
            for key, _ in sel.select(timeout=1):
                key.data.feed(key.data.sock.recv(65536))
    pump_until(lambda s: s.connected())
    threads, rss = daemon_threads_and_rss(sync)
    assert threads <= threads0 + 2, (threads0, threads)
    assert rss - rss0 < 100 * 1024, (rss0, rss)  # KiB: well under 100 KiB a stream

    # A flood of requests from other clients is still answered.
    failures = []

    def flood():
        for _ in range(50):
            r = sync.bob.get("/v1/pull?since=0")
            if r.status != 200:
                failures.append(r)
    workers = [threading.Thread(target=flood) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert failures == []
    assert sync.anonymous.get("/healthz").status == 200
    metrics = sync.anonymous.get("/metrics").body.decode()
    assert "idbmount_http_event_streams 1000\n" in metrics

    # And every stream hears the next change.
    with open(sync.path("alice", "shop", "orders", "r.json"), "w") as f:
        f.write('{"v": "all of you"}\n')
    seq = last_seq(sync)
    pump_until(lambda s: seq in s.seqs())
    for s in streams:
        sel.unregister(s)
        s.close()
    assert os.path.exists(sync.path("alice", "shop", "orders", "r.json"))


def test_a_stream_whose_client_went_away_is_logged_as_the_daemons(start_sync):
    """libmicrohttpd's own messages (here: the keep-alive comment finds the
    client gone) go to the log marked as the daemon's others are."""
    sync = start_sync(["--keepalive", "1"])
    s = sync.raw(timeout=30)
    s.sendall(("GET /v1/events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
               "Authorization: Bearer %s\r\n\r\n" % (sync.port, sync.tokens["alice"])).encode())
    assert s.recv(65536).startswith(b"HTTP/1.1 200")
    s.close()
    line = wait_for("libmicrohttpd's message", lambda: next(
        (l for l in sync.daemon.stderr().splitlines() if "Failed to send" in l), None))
    assert line.startswith("idbmount: http: "), line
