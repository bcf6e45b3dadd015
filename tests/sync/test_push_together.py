"""Pushes from several connections at once, as several tabs of one client
and several clients make them. They all write through one connection to
the store (the server's push writer, src/http/http_server.c), so each
answer must still be its own push's: its results, its sequence numbers,
its error and reason, never another push's."""
import json
import os
import threading

from conftest import assert_error, put

PUSHES = 12
PER_PUSH = 40


def pusher(api, db, store, tag, answers, errors):
    conn = api.connection()
    try:
        for p in range(PUSHES):
            ids = ["%s-%d-%d" % (tag, p, i) for i in range(PER_PUSH)]
            body = json.dumps({"mutations": [
                put(mid, db, store, mid, {"tag": tag, "push": p, "i": i})
                for i, mid in enumerate(ids)]})
            conn.request("POST", "/v1/push", body=body,
                         headers={"Authorization": "Bearer " + api.token,
                                  "Content-Type": "application/json"})
            r = conn.getresponse()
            answers.append((ids, r.status, json.loads(r.read())))
    except Exception as e:  # reported by the test
        errors.append(repr(e))
    finally:
        conn.close()


def wrong_pusher(api, tag, answers, errors):
    """Pushes into stores that do not exist, each named differently, so that
    a reason that came from another push would name another store."""
    conn = api.connection()
    try:
        for p in range(PUSHES):
            store = "%s_missing_%d" % (tag, p)
            body = json.dumps({"mutations": [put("%s-%d" % (tag, p), "shop", store, 1, {})]})
            conn.request("POST", "/v1/push", body=body,
                         headers={"Authorization": "Bearer " + api.token,
                                  "Content-Type": "application/json"})
            r = conn.getresponse()
            answers.append((store, r.status, r.getheader("Content-Type"), json.loads(r.read())))
    except Exception as e:
        errors.append(repr(e))
    finally:
        conn.close()


def test_pushes_on_several_connections_at_once_each_get_their_own_answer(sync):
    sync.alice.schema("shop", [{"name": "orders"}])
    sync.bob.schema("shop", [{"name": "orders"}])
    answers = {"alice-1": [], "alice-2": [], "bob-1": []}
    wrong, errors = [], []
    threads = [
        threading.Thread(target=pusher, args=(sync.alice, "shop", "orders", "alice-1",
                                              answers["alice-1"], errors)),
        threading.Thread(target=pusher, args=(sync.alice, "shop", "orders", "alice-2",
                                              answers["alice-2"], errors)),
        threading.Thread(target=pusher, args=(sync.bob, "shop", "orders", "bob-1",
                                              answers["bob-1"], errors)),
        threading.Thread(target=wrong_pusher, args=(sync.bob, "bob-wrong", wrong, errors)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []

    seqs = {"alice": [], "bob": []}
    for tag, got in answers.items():
        assert len(got) == PUSHES
        for ids, status, body in got:
            assert status == 200, body
            results = body["results"]
            assert [r["id"] for r in results] == ids
            assert all(r["status"] == "ok" and r["rev"] == 1 for r in results), results[:3]
            mine = [r["seq"] for r in results]
            assert mine == sorted(mine) and len(set(mine)) == len(mine)
            seqs[tag.split("-")[0]] += mine
    # One change each, none handed to two mutations.
    assert len(set(seqs["alice"])) == 2 * PUSHES * PER_PUSH
    assert len(set(seqs["bob"])) == PUSHES * PER_PUSH

    assert len(wrong) == PUSHES
    for store, status, ctype, body in wrong:
        assert status == 404 and ctype == "application/json", body
        assert body["error"] == "not_found"
        assert "no store '%s'" % store in body["detail"], (store, body)

    # Each client has exactly its own records, pulled and on the mount.
    for client, api, tags in (("alice", sync.alice, ("alice-1", "alice-2")),
                              ("bob", sync.bob, ("bob-1",))):
        pulled = api.pull(since=0, limit=10000)["changes"]
        keys = {c["key"] for c in pulled}
        want = {"%s-%d-%d" % (tag, p, i) for tag in tags for p in range(PUSHES)
                for i in range(PER_PUSH)}
        assert keys == want
        names = set(os.listdir(sync.path(client, "shop", "orders")))
        assert names == {k + ".json" for k in want}
    with open(sync.path("bob", "shop", "orders", "bob-1-3-7.json")) as f:
        assert json.load(f) == {"tag": "bob-1", "push": 3, "i": 7}
