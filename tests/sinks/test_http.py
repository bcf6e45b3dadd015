"""The http sink against a strict Flume HTTP source peer: the JSONHandler
body, the cap per POST, retries on 503, 5xx and dropped or refused
connections, parking on other 4xx and un-parking, the jsonl format."""
import json
import re
import socket

from conftest import batch_files, read_lines, wait_for
from peers import FlumeHttpPeer


def http_config(url, name="flume", **options):
    lines = ["[sink %s]" % name, "type = http", "url = %s" % url]
    lines += ["%s = %s" % (k, v) for k, v in options.items()]
    return "\n".join(lines) + "\n"


def records(n, start=0):
    return [(i, {"n": i}) for i in range(start, start + n)]


def test_flume_json_batches_within_the_channel_capacity(sinks):
    with FlumeHttpPeer() as peer:
        sinks.start(http_config(peer.url, max_age="100ms", header="X-Tenant: shop; eu"))
        sinks.import_lines("alice/shop/orders", records(250))
        sinks.wait_caught_up("flume")
        assert peer.errors == []
        assert peer.events == sinks.log_lines()
        # Default max_records for http: 100, Flume's transactionCapacity.
        assert max(n for _, n in peer.posts) == 100
        assert sum(n for _, n in peer.posts) == 250
        first = json.loads(peer.events[0])
        assert peer.headers[0] == {"seq": str(first["seq"]), "client": "alice", "db": "shop",
                                   "store": "orders", "op": "put"}
        h, n = peer.posts[0]
        assert h["filename"].endswith(".jsonl") and h["X-Idbmount-Batch"] == h["filename"]
        assert h["X-Idbmount-First-Seq"] == "1" and h["X-Idbmount-Count"] == str(n)
        assert h["X-Tenant"] == "shop; eu"
        st = sinks.sink_status("flume")
        assert st["delivered_changes"] == 250 and st["retries"] == 0


def test_flume_headers_of_a_value_holding_nul(sinks):
    """A value holding U+0000 is a valid value (JSON can say \\u0000): its
    event still carries every header, or a client could slip past a
    Flume selector that routes on them."""
    with FlumeHttpPeer() as peer:
        sinks.start(http_config(peer.url, max_age="50ms"))
        sinks.put("alice/shop/orders", 1, {"note": "a\u0000b"})
        sinks.put("alice/shop/orders", 2, {"note": "plain"})
        sinks.wait_caught_up("flume")
        assert peer.errors == []
        assert peer.events == sinks.log_lines()
        assert json.loads(peer.events[0])["value"] == {"note": "a\u0000b"}
        for line, headers in zip(peer.events, peer.headers):
            change = json.loads(line)
            assert headers == {"seq": str(change["seq"]), "client": "alice", "db": "shop",
                               "store": "orders", "op": "put"}, line


def test_flume_event_of_a_number_past_64_bit_integers(sinks):
    """A change line holding 10000000000000000000 (JSON.stringify's 1e19)
    is read for its headers as JavaScript reads it, not refused: the batch
    goes out rather than being parked."""
    with FlumeHttpPeer() as peer:
        sinks.start(http_config(peer.url, max_age="50ms"))
        sinks.put("alice/shop/orders", 1, {"n": 1e19})
        sinks.wait_caught_up("flume", timeout=30)
        assert peer.errors == []
        assert peer.events == sinks.log_lines()
        assert '"value":{"n":10000000000000000000}' in peer.events[0]
        change = json.loads(peer.events[0])
        assert peer.headers[0] == {"seq": str(change["seq"]), "client": "alice", "db": "shop",
                                   "store": "orders", "op": "put"}


def test_503_5xx_and_dropped_connections_are_retried_in_order(sinks):
    with FlumeHttpPeer() as peer:
        peer.answer_next(503, 2)
        peer.drop_next(1)
        peer.answer_next(500, 1)
        peer.answer_next(429, 1)
        sinks.start(http_config(peer.url, max_records=10, max_age="50ms",
                                retry_initial="20ms", retry_max="200ms"))
        sinks.import_lines("alice/shop/orders", records(40))
        sinks.wait_caught_up("flume")
        assert peer.events == sinks.log_lines()  # once each, in order
        st = sinks.sink_status("flume")
        # libcurl itself resends once on a kept-alive connection that the
        # server closed unanswered, so the drop may not count as a retry.
        assert st["retries"] in (4, 5) and st["failures"] == 0
        assert "HTTP 429" in st["last_error"]
        log = sinks.stderr()
        assert log.count("HTTP 503") == 2 and "HTTP 500" in log


def test_other_4xx_parks_the_batch_and_unpark_sends_it(sinks):
    with FlumeHttpPeer() as peer:
        peer.answer_next(400, 1)
        sinks.start(http_config(peer.url, max_records=1, max_age="20ms"))
        sinks.import_lines("alice/shop/orders", records(3))
        sinks.wait_caught_up("flume")
        lines = sinks.log_lines()
        assert peer.events == lines[1:]  # the others went on
        st = sinks.sink_status("flume")
        assert st["failures"] == 1 and st["parked"] == 1 and st["retries"] == 0
        parked = st["parked_batches"]
        assert [(b["first_seq"], b["last_seq"]) for b in parked] == [(1, 1)]
        assert "HTTP 400" in parked[0]["error"]
        assert "parked" in sinks.ctl("status").stdout
        assert "sink unpark flume" in sinks.stderr()
        p = sinks.ctl("sink", "unpark", "flume")
        assert "1 parked batch of sink flume will be sent again" in p.stderr
        wait_for("the unparked batch", lambda: len(peer.events) == 3)
        assert peer.events == lines[1:] + lines[:1]
        assert sinks.sink_status("flume")["parked"] == 0


def test_jsonl_format_for_nifi_listenhttp(sinks):
    with FlumeHttpPeer(mode="jsonl", path="/contentListener") as peer:
        sinks.start(http_config(peer.url, format="jsonl", max_age="50ms"))
        sinks.import_lines("alice/shop/orders", records(30))
        sinks.wait_caught_up("flume")
        assert peer.errors == []
        assert peer.events == sinks.log_lines()
        assert peer.posts[0][0]["Content-Type"] == "application/x-ndjson"


def test_refused_connection_backs_off_and_others_go_on(sinks, tmp_path):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    spool = tmp_path / "spool"
    sinks.start(http_config("http://127.0.0.1:%d/" % port, max_age="50ms",
                            retry_initial="50ms", retry_max="300ms") +
                "[sink spool]\ntype = dir\npath = %s\nmax_age = 50ms\n" % spool)
    sinks.import_lines("alice/shop/orders", records(20))
    sinks.wait_caught_up("spool")
    assert len(read_lines(batch_files(spool))) == 20
    st = wait_for("retries", lambda: (lambda s: s if s["retries"] >= 3 else None)(
        sinks.sink_status("flume")))
    assert "Couldn't connect to server" in st["last_error"]
    assert st["lag_changes"] == 20
    with FlumeHttpPeer(port=port) as peer:
        sinks.wait_caught_up("flume")
        assert peer.events == sinks.log_lines()


def test_shutdown_does_not_wait_for_a_server_that_never_answers(sinks):
    with FlumeHttpPeer() as peer:
        peer.hang_next(1)
        sinks.start(http_config(peer.url, max_age="50ms", timeout="10m"))
        sinks.import_lines("alice/shop/orders", records(3))
        wait_for("the POST", lambda: peer.requests == 1)
        # The request hangs (10 minutes allowed): the shutdown's last
        # attempt is cancelled after its few seconds, the batch stays in
        # the change log, and the daemon exits cleanly.
        assert sinks.stop() == 0
        assert peer.events == []
        sinks.start()
        sinks.wait_caught_up("flume")
        assert peer.events == sinks.log_lines()


NAME_RE = re.compile(r"^idbmount-[A-Za-z0-9._]+-[0-9a-f]{16}(\.\d+)?-(\d{20})-(\d{20})\.jsonl$")


def test_a_lost_answer_is_sent_again_with_the_same_batch_key(sinks):
    """At least once on the wire, exactly once for a receiver that drops a
    repeated X-Idbmount-Batch: the receiver committed, the answer was lost,
    the sink retried with the same key and the same body (the peer checks
    both)."""
    with FlumeHttpPeer() as peer:
        peer.dedupe = True
        peer.answer_next("commit-drop", 2)
        sinks.start(http_config(peer.url, max_records=10, max_age="20ms",
                                retry_initial="10ms", retry_max="100ms"))
        sinks.import_lines("alice/shop/orders", records(30))
        sinks.wait_caught_up("flume")
        assert peer.errors == []
        assert peer.duplicates >= 1
        assert peer.events == sinks.log_lines()  # once each, in order
        for h, _ in peer.posts:
            m = NAME_RE.match(h["X-Idbmount-Batch"])
            assert m and int(m.group(2)) == int(h["X-Idbmount-First-Seq"])
            assert int(m.group(3)) == int(h["X-Idbmount-Last-Seq"])


def test_the_redo_after_a_crash_carries_the_same_batch_key(sinks):
    """The daemon dies after the receiver committed a POST and before it
    recorded the delivery: the next start sends that batch again, under
    the same X-Idbmount-Batch with the same body, and a deduping receiver
    keeps one copy."""
    with FlumeHttpPeer() as peer:
        peer.dedupe = True
        peer.answer_next("commit-hang", 1)
        sinks.start(http_config(peer.url, max_records=100, max_age="20ms"))
        sinks.import_lines("alice/shop/orders", records(5))
        wait_for("the committed POST", lambda: len(peer.events) == 5)
        sinks.kill()
        peer.released.set()
        sinks.start()
        sinks.wait_caught_up("flume")
        assert sinks.stop() == 0
        assert peer.errors == []
        assert peer.duplicates == 1
        assert peer.events == sinks.log_lines()
        assert "writing it again" in sinks.stderr()
