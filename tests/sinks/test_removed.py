"""Per-sink metrics on /metrics, and sinks removed from the config file:
`idbmountctl status` shows them as removed (their cursor kept), /metrics
and the browser's delivered state leave them out, and a sink put back
goes on from its cursor."""
import http.client
import re

from conftest import batch_files, read_lines, wait_for
from test_delivered import pull
from test_dir import dir_config


def http_port(sinks, run=1):
    """The HTTP port of the `run`-th start of the daemon (its log grows)."""
    ports = wait_for("the daemon's HTTP port", lambda: re.findall(
        r"serving http://\S+ \(port (\d+)\)", sinks.stderr())[run - 1:])
    return int(ports[0])


def metrics(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/metrics")
    r = c.getresponse()
    body = r.read().decode()
    c.close()
    assert r.status == 200, body
    return body


def sample(text, name, sink):
    """The value of metric `name` for `sink`, or None when it is absent."""
    for line in text.splitlines():
        if line.startswith(name + "{") and ('sink="%s"' % sink) in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def test_metrics_show_each_sink(sinks, tmp_path):
    sinks.start(dir_config(tmp_path / "a", name="a", max_age="20ms") +
                "[sink broken]\ntype = http\nurl = http://127.0.0.1:9/\nmax_age = 20ms\n"
                "retry_initial = 10ms\nretry_max = 50ms\n")
    port = http_port(sinks)
    sinks.import_lines("alice/shop/orders", [(i, {"i": i}) for i in range(7)])
    sinks.wait_caught_up("a")
    wait_for("a failed attempt", lambda: sinks.sink_status("broken")["retries"] > 0)
    text = metrics(port)
    assert "# TYPE idbmount_sink_lag_changes gauge" in text
    assert sample(text, "idbmount_sink_delivered_changes_total", "a") == 7
    assert sample(text, "idbmount_sink_lag_changes", "a") == 0
    assert sample(text, "idbmount_sink_lag_changes", "broken") == 7
    assert sample(text, "idbmount_sink_retries_total", "broken") >= 1
    assert sample(text, "idbmount_sink_last_error_info", "broken") == 1
    assert sample(text, "idbmount_sink_last_error_info", "a") is None
    assert 'type="http",error="' in text
    assert sinks.stop() == 0


def test_a_removed_sink_is_shown_as_removed_and_resumes_when_put_back(sinks, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    both = dir_config(a, name="a", max_age="20ms") + dir_config(b, name="b", max_age="20ms",
                                                               acknowledge="rename")
    sinks.start(both)
    sinks.import_lines("alice/shop/orders", [(i, {"i": i}) for i in range(5)])
    sinks.wait_caught_up("a")
    sinks.wait_caught_up("b")
    cursor_b = sinks.sink_status("b")["cursor"]
    assert sinks.stop() == 0

    # b leaves the config file.
    sinks.start(dir_config(a, name="a", max_age="20ms"))
    port = http_port(sinks, run=2)
    sinks.import_lines("alice/shop/orders", [(i, {"i": i}) for i in range(5, 9)])
    sinks.wait_caught_up("a")
    st = {s["name"]: s for s in sinks.status()["sinks"]}
    assert st["a"]["removed"] is False and st["a"]["removed_ms"] == 0
    assert st["b"]["removed"] is True and st["b"]["removed_ms"] > 0
    assert st["b"]["cursor"] == cursor_b  # kept, nothing shipped
    text = sinks.ctl("status").stdout
    assert "sink b (dir)\n  REMOVED from the config file" in text
    assert "goes on from seq %d" % (cursor_b + 1) in text
    assert "b dir %d (removed from the config file)" % cursor_b in sinks.ctl("sink", "list").stdout
    m = metrics(port)
    assert sample(m, "idbmount_sink_lag_changes", "a") == 0
    assert sample(m, "idbmount_sink_lag_changes", "b") is None
    # b never took anything (acknowledge = rename, nobody renamed): were it
    # still counted, no change would ever be delivered to the browser.
    wait_for("delivered in pull", lambda: pull(port, sinks.token).get("delivered", 0) >= 9)
    assert sinks.stop() == 0

    # A config file without sinks: every sink is removed.
    sinks.start("")
    assert all(s["removed"] for s in sinks.status()["sinks"])
    assert sinks.stop() == 0

    # b comes back and goes on from its cursor: the changes made while it
    # was away, once.
    sinks.start(both)
    sinks.wait_caught_up("b")
    assert sinks.sink_status("b")["removed"] is False
    assert sinks.stop() == 0
    keys = [line.split('"key":')[1].split(",")[0] for line in read_lines(batch_files(b))]
    assert keys == [str(i) for i in range(9)]
