"""A token reaches its own client's tree only: alice's token can never read,
change or even learn the names of bob's data. Every endpoint is tried with
the wrong client's token."""
import json
import os
import socket

from conftest import assert_error, put


def secret_setup(sync):
    sync.bob.schema("bobs_secret_db", [{"name": "bobs_secret_store"}])
    sync.bob.push([put("b1", "bobs_secret_db", "bobs_secret_store", "bobs_key",
                       {"bobs": "secret value"})])
    sync.alice.schema("shop", [{"name": "orders"}])


def no_secret(reply, sent=""):
    """Nothing of bob's in the reply but what the request itself named."""
    text = reply.body.decode(errors="replace")
    for word in ("bobs_secret_db", "bobs_secret_store", "bobs_key", "secret value", '"bob"'):
        if word not in sent:
            assert word not in text, (word, text)


def test_alices_token_cannot_push_into_bobs_database(sync):
    secret_setup(sync)
    r = sync.alice.post("/v1/push", {"mutations": [
        put("a1", "bobs_secret_db", "bobs_secret_store", "bobs_key", {"evil": 1})]})
    same_as_missing = sync.alice.post("/v1/push", {"mutations": [
        put("a1", "no_such_db", "no_such_store", "bobs_key", {"evil": 1})]})
    assert_error(r, 404, "not_found")
    assert r.status == same_as_missing.status
    with open(sync.path("bob", "bobs_secret_db", "bobs_secret_store", "bobs_key.json")) as f:
        assert json.load(f) == {"bobs": "secret value"}
    assert "bobs_secret_db" not in os.listdir(sync.path("alice"))


def test_alices_token_cannot_delete_bobs_record(sync):
    secret_setup(sync)
    r = sync.alice.post("/v1/push", {"mutations": [
        {"id": "a2", "db": "bobs_secret_db", "store": "bobs_secret_store", "key": "bobs_key",
         "op": "delete"}]})
    assert_error(r, 404, "not_found")
    assert os.path.exists(sync.path("bob", "bobs_secret_db", "bobs_secret_store",
                                    "bobs_key.json"))


def test_alices_schema_call_makes_her_own_database_of_that_name(sync):
    secret_setup(sync)
    answer = sync.alice.schema("bobs_secret_db", [{"name": "mine"}])
    # She sees only what she made: not bob's store of the same database name.
    assert [s["name"] for s in answer["stores"]] == ["mine"]
    assert os.listdir(sync.path("bob", "bobs_secret_db")) == ["bobs_secret_store"]


def test_alices_pull_never_returns_bobs_changes(sync):
    secret_setup(sync)
    sync.alice.push([put("a1", "shop", "orders", 1, {"mine": True})])
    r = sync.alice.get("/v1/pull?since=0&limit=10000")
    assert r.status == 200
    assert [c["key"] for c in r.json()["changes"]] == [1]
    no_secret(r)


def test_naming_another_client_is_403_whether_or_not_it_exists(sync):
    secret_setup(sync)
    for name in ("bob", "nobody_at_all"):
        for method, path, body in [
                ("POST", "/v1/schema", {"client": name, "db": "shop"}),
                ("POST", "/v1/push", {"client": name, "mutations": []}),
                ("GET", "/v1/pull?since=0&client=" + name, None),
                ("GET", "/v1/events?since=0&client=" + name, None)]:
            r = sync.alice.request(method, path, body=body)
            body_json = assert_error(r, 403, "forbidden")
            assert name not in body_json["detail"]
            no_secret(r)
    # Naming herself is fine.
    r = sync.alice.get("/v1/pull?since=0&client=alice")
    assert r.status == 200


def test_alices_events_do_not_fire_for_bobs_changes(sync):
    sync.alice.schema("shop", [{"name": "orders"}])
    s = socket.create_connection(("127.0.0.1", sync.port), timeout=60)
    s.sendall(("GET /v1/events?since=0 HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n"
               "Authorization: Bearer %s\r\n\r\n" % (sync.port, sync.tokens["alice"])).encode())
    got = b""
    while b": connected" not in got:
        got += s.recv(4096)
    # bob writes a lot; then alice writes once: the first event alice sees
    # must be her own change's seq.
    sync.bob.schema("home", [{"name": "things"}])
    sync.bob.push([put("b%d" % i, "home", "things", i, i) for i in range(5)])
    [mine] = sync.alice.push([put("a1", "shop", "orders", 1, 1)])
    while b"data: " not in got:
        got += s.recv(4096)
    s.close()
    event = got.split(b"data: ", 1)[1].split(b"\n", 1)[0]
    assert json.loads(event) == {"seq": mine["seq"]}


def test_every_endpoint_with_the_wrong_token_reveals_nothing(sync):
    secret_setup(sync)
    calls = [
        ("POST", "/v1/schema", {"db": "bobs_secret_db", "stores": [{"name": "x"}]}),
        ("POST", "/v1/push", {"mutations": [put("z", "bobs_secret_db", "bobs_secret_store",
                                                "bobs_key", 1)]}),
        ("GET", "/v1/pull?since=0", None),
        ("GET", "/v1/changes?since=0", None),
        ("GET", "/metrics", None),
        ("GET", "/healthz", None),
        ("GET", "/", None),
        ("GET", "/idbmount.js", None),
    ]
    for method, path, body in calls:
        r = sync.alice.request(method, path, body=body)
        assert r.status in (200, 403, 404), (path, r)
        no_secret(r, sent=json.dumps(body))
    # bob's data is as it was
    with open(sync.path("bob", "bobs_secret_db", "bobs_secret_store", "bobs_key.json")) as f:
        assert json.load(f) == {"bobs": "secret value"}
    assert os.listdir(sync.path("bob", "bobs_secret_db")) == ["bobs_secret_store"]
