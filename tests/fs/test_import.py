"""idbmountctl import of files longer than one batch of lines: both passes
read lines on a second thread in batches of 1,000 and lay out puts there
(half of them in pass 1, all in pass 2), so lines of every kind must come
out in file order, and every bad line must be reported with its own
number, wherever a batch boundary or the split between the threads falls.
"""
import json
import os


def record(idb, key):
    with open(os.path.join(idb.store, "%d.json" % key)) as f:
        return json.load(f)


def import_refused(idb, f):
    """Imports `f`, which must fail; returns the result and the line
    numbers its stderr reports, in order."""
    p = idb.ctl("import", "alice/shop/orders", str(f), check=False)
    assert p.returncode == 1
    reported = [int(line.split(":")[1]) for line in p.stderr.splitlines()
                if line.startswith(str(f) + ":")]
    return p, reported


def test_a_long_file_of_mixed_lines_applies_in_file_order(idb, tmp_path):
    lines = []
    for i in range(3500):
        lines.append(json.dumps({"key": i, "value": {"i": i}}))
        if i % 700 == 0:
            lines.append("")  # blank: skipped, but counted as a line
    # Later lines win, across batches: 10 rewritten far after its put,
    # 20 deleted, 30 deleted and put back, 999-1001 (a batch boundary)
    # rewritten.
    lines.append(json.dumps({"key": 10, "value": {"i": "ten"}}))
    lines.append(json.dumps({"key": 20, "op": "delete"}))
    lines.append(json.dumps({"key": 30, "op": "delete"}))
    lines.append(json.dumps({"key": 30, "value": {"i": "back"}}))
    lines.append(json.dumps({"key": 99999, "op": "delete"}))  # absent
    for i in (999, 1000, 1001):
        lines.append(json.dumps({"key": i, "value": {"i": -i}}))
    # Lines the text path leaves to jansson: an escaped member name and
    # a change line as `log` prints it.
    lines.append('{"k\\u0065y": 40, "value": {"i": "escaped"}}')
    lines.append(json.dumps({"seq": 7, "client": "bob", "key": 50, "op": "put",
                             "rev": 3, "origin": "browser", "value": {"i": "logged"}}))
    f = tmp_path / "in.jsonl"
    f.write_text("\r\n".join(lines) + "\r\n")

    p = idb.ctl("import", "alice/shop/orders", str(f))
    assert p.stdout == ("imported 3507 records into alice/shop/orders, "
                        "deleted 2 (1 already absent)\n"), p.stdout
    names = os.listdir(idb.store)
    assert len(names) == 3499 and "20.json" not in names
    assert record(idb, 10) == {"i": "ten"}
    assert record(idb, 30) == {"i": "back"}
    assert [record(idb, i) for i in (998, 999, 1000, 1001, 1002)] == \
        [{"i": 998}, {"i": -999}, {"i": -1000}, {"i": -1001}, {"i": 1002}]
    assert record(idb, 40) == {"i": "escaped"}
    assert record(idb, 50) == {"i": "logged"}
    assert record(idb, 3499) == {"i": 3499}
    changes = idb.changes()
    assert len(changes) == 3500 + 9
    assert [c["seq"] for c in changes] == sorted(c["seq"] for c in changes)
    assert [(c["key"], c["op"]) for c in changes[3500:3504]] == \
        [(10, "put"), (20, "delete"), (30, "delete"), (30, "put")]


def test_bad_lines_are_reported_by_their_own_numbers(idb, tmp_path):
    """Bad lines on either thread's share (odd and even places in a batch),
    on both sides of batch boundaries, after blank lines, and last."""
    bad_at = {1, 2, 3, 999, 1000, 1001, 1002, 2001, 2600}
    lines = []
    for n in range(1, 2601):
        if n in bad_at:
            lines.append('{"key": %d, "value": {"i": }}' % n)  # not JSON
        elif n % 500 == 0:
            lines.append("   ")
        else:
            lines.append(json.dumps({"key": n, "value": {"i": n}}))
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(lines) + "\n")
    p, reported = import_refused(idb, f)
    assert reported == sorted(bad_at), p.stderr
    assert "9 bad lines in %s; nothing was imported" % f in p.stderr
    assert os.listdir(idb.store) == []
    assert idb.changes() == []


def test_more_than_twenty_bad_lines_report_the_first_twenty(idb, tmp_path):
    lines = [json.dumps({"key": n, "value": n}) if n % 3 else "oops"
             for n in range(1, 3001)]
    f = tmp_path / "in.jsonl"
    f.write_text("\n".join(lines) + "\n")
    p, reported = import_refused(idb, f)
    assert reported == list(range(3, 61, 3)), p.stderr
    assert "... and 980 more" in p.stderr
    assert "1000 bad lines" in p.stderr
    assert os.listdir(idb.store) == []
