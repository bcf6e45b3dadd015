"""Delivered reaches the browser: once a pipeline has taken a batch (here
Flume's rename to .COMPLETED), /v1/pull carries "delivered" and the event
stream announces it, so the library can mark the records delivered. The
mark never passes a batch that was not taken: one parked, or one a
consumer has not taken yet while it took later ones."""
import http.client
import json
import os
import re
import socket
import threading
import time

from conftest import batch_files, wait_for
from peers import FlumeHttpPeer
from test_dir import dir_config
from test_http import http_config, records


def http_port(sinks):
    m = wait_for("the daemon's HTTP port",
                 lambda: re.search(r"serving http://\S+ \(port (\d+)\)", sinks.stderr()))
    return int(m.group(1))


def pull(port, token, since=0):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/v1/pull?since=%d" % since, headers={"Authorization": "Bearer " + token})
    r = c.getresponse()
    body = r.read()
    c.close()
    assert r.status == 200, body
    return json.loads(body)


def test_pull_and_events_carry_what_the_pipeline_took(sinks, tmp_path):
    spool = tmp_path / "spool"
    sinks.start(dir_config(spool, max_records=100, max_age="50ms", acknowledge="rename"))
    token = sinks.token
    port = http_port(sinks)
    sinks.put("alice/shop/orders", 1, {"v": 1})
    sinks.wait_caught_up("spool")
    first = pull(port, token)
    seq = first["changes"][-1]["seq"]
    assert "delivered" not in first  # published, but no pipeline took it yet

    events = []
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("GET", "/v1/events?since=%d" % seq,
                 headers={"Authorization": "Bearer " + token})
    resp = conn.getresponse()
    assert resp.status == 200

    def read_events():
        for raw in resp:
            line = raw.decode().rstrip("\n")
            if line.startswith("data:"):
                events.append(json.loads(line[5:]))
                if events[-1].get("delivered", 0) >= seq:
                    return
    reader = threading.Thread(target=read_events, daemon=True)
    reader.start()

    [batch] = batch_files(spool)
    os.rename(batch, batch + ".COMPLETED")  # what Flume does with a consumed file
    wait_for("delivered in pull", lambda: pull(port, token).get("delivered", 0) >= seq)
    reader.join(timeout=30)
    assert any(e.get("delivered", 0) >= seq for e in events), events
    conn.close()
    assert sinks.stop() == 0


class EventReader:
    """An open /v1/events stream; what it sent (its data lines) collects
    in `events` on a thread of its own."""

    def __init__(self, port, token, since):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.conn.request("GET", "/v1/events?since=%d" % since,
                          headers={"Authorization": "Bearer " + token})
        self.resp = self.conn.getresponse()
        assert self.resp.status == 200
        self.connected = threading.Event()
        self.events = []
        threading.Thread(target=self.read, daemon=True).start()
        assert self.connected.wait(10), "no ': connected' on the stream"

    def read(self):
        try:
            for raw in self.resp:
                line = raw.decode().rstrip("\n")
                if line == ": connected":
                    self.connected.set()
                elif line.startswith("data:"):
                    self.events.append(json.loads(line[5:]))
        except (OSError, ValueError, AttributeError):
            pass  # closed by close() (http.client then has no socket)

    def delivered(self, seq):
        return any(e.get("delivered", 0) >= seq for e in self.events)

    def close(self):
        # shutdown() ends the reading thread's recv() at once; close()
        # alone leaves the socket open while the response holds it.
        self.conn.sock.shutdown(socket.SHUT_RDWR)
        self.conn.close()


def test_a_new_delivered_mark_goes_only_to_clients_it_tells_something(sinks, tmp_path):
    """The mark rises each time a pipeline takes a batch. A client whose
    changes the last mark it was sent already covered (or that has none)
    learns nothing from a higher one, and is not sent it: with many idle
    clients connected that was a write to every stream for every batch."""
    spool = tmp_path / "spool"
    sinks.start(dir_config(spool, max_records=100, max_age="50ms", acknowledge="rename"))
    port = http_port(sinks)
    alice = sinks.token
    bob = sinks.ctl("client", "add", "bob").stdout.strip()
    sinks.put("alice/shop/orders", 1, {"v": 1})
    sinks.wait_caught_up("spool")
    seq_a = pull(port, alice)["changes"][-1]["seq"]
    a = EventReader(port, alice, seq_a)
    b = EventReader(port, bob, 0)  # bob has no changes: nothing to say yet
    try:
        [batch] = batch_files(spool)
        os.rename(batch, batch + ".COMPLETED")
        wait_for("alice's stream to say her change was delivered", lambda: a.delivered(seq_a))

        sinks.put("bob/shop/orders", 1, {"v": 2})
        sinks.wait_caught_up("spool")
        seq_b = pull(port, bob)["changes"][-1]["seq"]
        [batch] = [f for f in batch_files(spool) if not f.endswith(".COMPLETED")]
        os.rename(batch, batch + ".COMPLETED")
        wait_for("bob's stream to say his change was delivered", lambda: b.delivered(seq_b))
        wait_for("pull to carry the new mark", lambda: pull(port, alice).get("delivered", 0) >= seq_b)
        time.sleep(0.5)  # what else was written in the same round has arrived

        # Bob heard only of his own change and its delivery; alice's
        # stream heard nothing of bob's batch (her change was covered).
        assert b.events and all(e["seq"] == seq_b for e in b.events), b.events
        assert not a.delivered(seq_b), a.events
        assert [e for e in a.events if e.get("delivered", 0) >= seq_a] == [a.events[-1]], a.events
    finally:
        a.close()
        b.close()
    assert sinks.stop() == 0


def never(what, fn, seconds=1.5):
    """`fn` stays false for `seconds` (long enough for the flusher's
    rounds, its look at what was taken included, to run several times)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert not fn(), what
        time.sleep(0.05)


def test_a_parked_batch_holds_the_mark_back_until_it_is_delivered(sinks):
    """Batch 1 is refused for good (HTTP 400: parked), batches 2 and 3
    are taken: the mark stays below batch 1, whatever came after, until
    `sink unpark` sends it again and it is taken."""
    with FlumeHttpPeer() as peer:
        peer.answer_next(400, 1)
        sinks.start(http_config(peer.url, max_records=1, max_age="20ms"))
        port = sinks.port()
        sinks.import_lines("alice/shop/orders", records(3))
        sinks.wait_caught_up("flume")
        wait_for("batches 2 and 3 at the receiver", lambda: len(peer.events) == 2)
        st = sinks.sink_status("flume")
        [parked] = st["parked_batches"]
        first = parked["first_seq"]
        last = pull(port, sinks.token)["changes"][-1]["seq"]
        assert first < last
        never("delivered to pass the parked batch",
              lambda: pull(port, sinks.token).get("delivered", 0) >= first)
        assert sinks.sink_status("flume")["delivered_seq"] < first
        assert sinks.ctl("status", "--json").returncode == 0

        sinks.ctl("sink", "unpark", "flume")
        wait_for("delivered to reach the last seq once the batch went",
                 lambda: pull(port, sinks.token).get("delivered", 0) == last)
        assert len(peer.events) == 3
        assert sinks.sink_status("flume")["delivered_seq"] == last
    assert sinks.stop() == 0


def test_a_batch_taken_before_an_earlier_one_does_not_count_the_earlier(sinks, tmp_path):
    """Flume takes files in its own order (oldest mtime first, but a
    consumer may go by name, or several may share a directory): batches 2
    and 3 renamed to .COMPLETED before batch 1 leave the mark below batch
    1; taking batch 1 then moves it to the end. A restart in between finds
    the same."""
    spool = tmp_path / "spool"
    sinks.start(dir_config(spool, max_records=1, max_age="20ms", acknowledge="rename"))
    port = sinks.port()
    sinks.import_lines("alice/shop/orders", records(3))
    sinks.wait_caught_up("spool")
    files = batch_files(spool)
    assert len(files) == 3
    last = pull(port, sinks.token)["changes"][-1]["seq"]
    for f in files[1:]:
        os.rename(f, f + ".COMPLETED")
    never("delivered while batch 1 is not taken",
          lambda: "delivered" in pull(port, sinks.token))
    assert sinks.stop() == 0

    sinks.start()
    port = sinks.port()
    never("delivered after a restart while batch 1 is not taken",
          lambda: "delivered" in pull(port, sinks.token))
    os.rename(files[0], files[0] + ".COMPLETED")
    wait_for("delivered to reach the last batch once the first was taken",
             lambda: pull(port, sinks.token).get("delivered", 0) == last)
    assert sinks.stop() == 0
