"""A push's results as the store gives them and the endpoint renders them
(src/DESIGN.md, "Sync protocol"): remembered per mutation id for retries,
a conflict carrying the record's value as the change log has it, the
answer's size capped, a malformed mutation placed in the body."""
import json
import os
import sqlite3
import time

from conftest import assert_error, put

ORDERS = [{"name": "orders"}]


def test_a_conflict_answers_the_value_as_written_and_a_retry_the_same(sync):
    # Written through the mount with numbers JSON.stringify would write
    # otherwise ("1.50", an escape): the answer carries the value as the
    # change log does, and a retry of the conflict the same bytes, even
    # after the record changed.
    sync.alice.schema("shop", ORDERS)
    sync.alice.push([put("a1", "shop", "orders", "k", {"v": 1})])
    with open(sync.path("alice", "shop", "orders", "k.json"), "w") as f:
        f.write('{"v": 1.50, "s": "\\u00e9", "big": 18446744073709552000}\n')
    first = sync.alice.post("/v1/push", {"mutations": [put("c1", "shop", "orders", "k", 2,
                                                           base=1)]})
    assert first.status == 200, first
    text = first.body.decode()
    assert '"value":{"v":1.5,"s":"\u00e9","big":18446744073709552000}' in text, text
    sync.alice.push([put("a2", "shop", "orders", "k", {"v": 3}, base=2)])
    again = sync.alice.post("/v1/push", {"mutations": [put("c1", "shop", "orders", "k", 9)]})
    assert again.body == first.body
    assert sync.alice.pull()["changes"][-1]["value"] == {"v": 3}


def test_a_generated_key_is_answered_again_on_a_retry(sync):
    sync.alice.schema("shop", [{"name": "orders", "keyPath": "id", "autoIncrement": True}])
    m = {"id": "g1", "db": "shop", "store": "orders", "op": "put", "value": {"x": 1}}
    [first] = sync.alice.push([m])
    assert first["key"] == 1, first
    [again] = sync.alice.push([m])
    assert again == first
    assert os.listdir(sync.path("alice", "shop", "orders")) == ["1.json"]


def test_an_answer_remembered_before_results_had_columns_is_replayed(sync):
    """Data directories made before the results table hold the answers as
    they were sent; a retry of one is answered with it, not applied."""
    sync.alice.schema("shop", ORDERS)
    sync.alice.push([put("seed", "shop", "orders", "k", {"v": 1})])
    db = sqlite3.connect(os.path.join(sync.data, "idbmount.db"), timeout=60)
    client = db.execute("SELECT id FROM clients WHERE name = 'alice'").fetchone()[0]
    now = int(time.time() * 1000)
    old = {
        "old-ok": {"id": "old-ok", "status": "ok", "rev": 7, "seq": 70, "key": 3},
        "old-conflict": {"id": "old-conflict", "status": "conflict",
                         "current": {"rev": 4, "value": {"n": 18446744073709552000},
                                     "deleted": False}},
    }
    with db:
        for mid, answer in old.items():
            db.execute("INSERT INTO sync_mutations(client_id, mutation_id, result, ts_ms) "
                       "VALUES (?, ?, ?, ?)", (client, mid, json.dumps(answer), now))
    db.close()
    seq = sync.changes()[-1]["seq"]
    r = sync.alice.post("/v1/push", {"mutations": [
        put("old-ok", "shop", "orders", "x", 1), put("old-conflict", "shop", "orders", "y", 2)]})
    assert r.status == 200, r
    assert r.json()["results"] == list(old.values())
    assert sync.changes()[-1]["seq"] == seq
    assert sorted(os.listdir(sync.path("alice", "shop", "orders"))) == ["k.json"]


def test_answers_are_forgotten_after_thirty_days(sync):
    """A result is remembered for 30 days (a retry within them is answered,
    not applied), then dropped by a later push: the oldest first, in the
    results table and in the one of data directories made before it."""
    sync.alice.schema("shop", ORDERS)
    sync.alice.push([put("a%d" % i, "shop", "orders", "a%d" % i, i) for i in range(3)])
    sync.alice.push([put("b0", "shop", "orders", "b0", 0)])
    db = sqlite3.connect(os.path.join(sync.data, "idbmount.db"), timeout=60)
    client = db.execute("SELECT id FROM clients WHERE name = 'alice'").fetchone()[0]
    now = int(time.time() * 1000)
    day = 86400 * 1000
    with db:
        # a0 and a1 past the 30 days, a2 just within them
        db.execute("UPDATE sync_results SET ts_ms = ? WHERE mutation_id IN ('a0', 'a1')",
                   (now - 31 * day,))
        db.execute("UPDATE sync_results SET ts_ms = ? WHERE mutation_id = 'a2'",
                   (now - 29 * day,))
        db.execute("INSERT INTO sync_mutations(client_id, mutation_id, result, ts_ms) "
                   "VALUES (?, 'old', '{\"id\":\"old\",\"status\":\"ok\",\"rev\":1,"
                   "\"seq\":1}', ?)", (client, now - 31 * day))

    def remembered():
        return sorted(r[0] for r in db.execute(
            "SELECT mutation_id FROM sync_results UNION ALL "
            "SELECT mutation_id FROM sync_mutations"))

    assert remembered() == ["a0", "a1", "a2", "b0", "old"]
    sync.alice.push([put("c0", "shop", "orders", "c0", 0)])
    assert remembered() == ["a2", "b0", "c0"]
    # a retry of a2 is answered as before; one of a0 is a new write
    seq = sync.changes()[-1]["seq"]
    [again] = sync.alice.push([put("a2", "shop", "orders", "a2", 2)])
    assert again["status"] == "ok" and again["seq"] < seq
    [anew] = sync.alice.push([put("a0", "shop", "orders", "a0", 0)])
    assert anew["status"] == "ok" and anew["seq"] > seq
    db.close()


def test_an_answer_past_its_cap_is_413_and_nothing_is_applied(start_sync):
    """A conflict carries its record's value, so the answer is not bounded
    by the body: past 4 x --max-body it is refused, and nothing of the push
    is applied (a retry then does the same, so the client pushes fewer)."""
    sync = start_sync(["--max-body", "4K"])
    sync.alice.schema("shop", ORDERS)
    big = {"text": "x" * 6000}
    sync.ctl("put", "alice/shop/orders", '"big"', json.dumps(big))
    seq = sync.changes()[-1]["seq"]
    stale = [put("s%d" % i, "shop", "orders", "big", i, base=None) for i in range(3)]
    mutations = [put("n0", "shop", "orders", "new", 1)] + stale
    body = assert_error(sync.alice.post("/v1/push", {"mutations": mutations}), 413,
                        "payload_too_large")
    assert "over 16384 bytes" in body["detail"] and "nothing was applied" in body["detail"], body
    assert sync.changes()[-1]["seq"] == seq
    assert not os.path.exists(sync.path("alice", "shop", "orders", "new.json"))
    # Two conflicts fit: the same push, one fewer, is answered.
    results = sync.alice.push(mutations[:3])
    assert [r["status"] for r in results] == ["ok", "conflict", "conflict"]
    assert results[1]["current"]["value"] == big


def test_a_malformed_mutation_is_placed_in_the_body_by_line_and_column(sync):
    """The reason is jansson's for the whole body, its line and column
    counted from the body's start, though only the mutation was parsed."""
    sync.alice.schema("shop", ORDERS)
    good = ['{"id": "m%d", "db": "shop", "store": "orders", "key": "k%d", "op": "put", '
            '"value": {"v": "\u00e9%d"}}' % (i, i, i) for i in range(20)]
    for where in (3, 17):
        texts = list(good)
        texts[where] = texts[where].replace('"\u00e9%d"' % where, "tru")
        text = '{"client": "alice",\n "mutations": [' + ", ".join(texts[:10]) + ",\n" + \
            ", ".join(texts[10:]) + "]}"
        detail = assert_error(sync.alice.post("/v1/push", text.encode()), 400,
                              "bad_request")["detail"]
        line = 2 if where < 10 else 3
        row = text.split("\n")[line - 1]
        column = row.index("tru}") + len("tru")  # jansson's: the last it took
        assert detail == "malformed JSON: line %d column %d: invalid token near 'tru'" % (
            line, column), detail
    assert os.listdir(sync.path("alice", "shop")) == ["orders"]
    assert os.listdir(sync.path("alice", "shop", "orders")) == []
