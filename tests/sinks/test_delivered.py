"""Delivered reaches the browser: once a pipeline has taken a batch (here
Flume's rename to .COMPLETED), /v1/pull carries "delivered" and the event
stream announces it, so the library can mark the records delivered."""
import http.client
import json
import os
import re
import threading

from conftest import batch_files, wait_for
from test_dir import dir_config


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
