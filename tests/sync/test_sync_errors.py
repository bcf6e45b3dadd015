"""Every bad input gets a 4xx with a JSON {error, detail} body and changes
nothing (src/DESIGN.md, "Errors"). One test per bad input."""
import json
import os

import pytest

from conftest import Api, assert_error, put

ORDERS = [{"name": "orders"}]


@pytest.fixture
def shop(sync):
    sync.alice.schema("shop", ORDERS)
    sync.alice.push([put("seed", "shop", "orders", "kept", {"v": 1})])
    sync.seq0 = sync.changes()[-1]["seq"]
    return sync


def unchanged(sync):
    assert sync.changes()[-1]["seq"] == sync.seq0
    assert os.listdir(sync.path("alice", "shop", "orders")) == ["kept.json"]


def assert_push_refused(shop, m):
    """A push of the one mutation `m` is a 400 bad_request and changes
    nothing; returns the error body."""
    body = assert_error(shop.alice.post("/v1/push", {"mutations": [m]}), 400, "bad_request")
    unchanged(shop)
    return body


def test_missing_token_is_401(shop):
    r = shop.anonymous.post("/v1/push", {"mutations": [put("x", "shop", "orders", 1, 1)]})
    assert_error(r, 401, "unauthorized")
    assert r.header("www-authenticate") == 'Bearer realm="idbmount"'
    unchanged(shop)


def test_wrong_token_is_401(shop):
    bad = Api(shop.port, "0" * 64)
    assert_error(bad.post("/v1/push", {"mutations": [put("x", "shop", "orders", 1, 1)]}),
                 401, "unauthorized")
    unchanged(shop)


def test_token_in_another_scheme_is_401(shop):
    r = shop.anonymous.get("/v1/pull", headers={"Authorization": "Basic " + shop.tokens["alice"]})
    assert_error(r, 401, "unauthorized")


def test_token_in_the_query_is_only_for_event_streams(shop):
    r = shop.anonymous.get("/v1/pull?access_token=" + shop.tokens["alice"])
    assert_error(r, 401, "unauthorized")


def test_malformed_json_in_push_is_400(shop):
    r = shop.alice.post("/v1/push", '{"mutations": [')
    body = assert_error(r, 400, "bad_request")
    assert "malformed JSON" in body["detail"] and "line 1" in body["detail"]
    unchanged(shop)


def test_malformed_mutation_in_a_long_push_is_400(shop):
    # Long pushes are split into one text per mutation and parsed on two
    # threads; a bad literal deep inside one must still fail the whole push
    # with jansson's reason and position in the body.
    good = [json.dumps(put("m%d" % i, "shop", "orders", "k%d" % i, {"v": i}))
            for i in range(40)]
    good[25] = good[25].replace('"v": 25', '"v": tru')
    r = shop.alice.post("/v1/push", '{"mutations": [\n' + ",\n".join(good) + "\n]}")
    body = assert_error(r, 400, "bad_request")
    assert "malformed JSON" in body["detail"] and "line 27" in body["detail"], body
    unchanged(shop)


def test_body_with_trailing_text_is_400(shop):
    text = json.dumps({"mutations": [put("t", "shop", "orders", "t", 1)]}) + " x"
    assert_error(shop.alice.post("/v1/push", text), 400, "bad_request")
    unchanged(shop)


def test_bad_value_in_a_conflicting_mutation_is_a_conflict(shop):
    # The value is laid out ahead of the write (on the second thread), but a
    # mutation whose base disagrees is answered with the record as it is,
    # as before: its value is never looked at. With a base that agrees, the
    # same value fails the push.
    shop.alice.schema("shop", ORDERS + [{"name": "people", "keyPath": "id"}])
    shop.alice.push([put("p0", "shop", "people", 1, {"id": 1})])
    mutations = [put("p%d" % i, "shop", "people", 100 + i, {"id": 100 + i})
                 for i in range(1, 21)]
    mutations[10] = put("c", "shop", "people", 1, {"id": 2}, base=7)
    results = shop.alice.push(mutations)
    assert [r["status"] for r in results].count("ok") == 19
    assert results[10]["status"] == "conflict" and results[10]["current"]["rev"] == 1
    mutations = [put("q%d" % i, "shop", "people", 200 + i, {"id": 200 + i})
                 for i in range(1, 21)]
    mutations[10] = put("d", "shop", "people", 1, {"id": 2}, base=1)
    body = assert_error(shop.alice.post("/v1/push", {"mutations": mutations}), 400,
                        "bad_request")
    assert "mutation 10 (id d)" in body["detail"] and "keyPath" in body["detail"], body
    assert not os.path.exists(shop.path("alice", "shop", "people", "201.json"))


def test_malformed_json_in_schema_is_400(shop):
    assert_error(shop.alice.post("/v1/schema", "{db: shop}"), 400, "bad_request")
    assert os.listdir(shop.path("alice")) == ["shop"]


def test_empty_body_is_400(shop):
    assert_error(shop.alice.post("/v1/push", ""), 400, "bad_request")


def test_body_that_is_not_an_object_is_400(shop):
    assert_error(shop.alice.post("/v1/push", "[1, 2]"), 400, "bad_request")


def test_push_without_mutations_array_is_400(shop):
    assert_error(shop.alice.post("/v1/push", {"mutations": {"id": "x"}}), 400, "bad_request")


def test_invalid_key_is_400(shop):
    r = shop.alice.post("/v1/push", {"mutations": [put("x", "shop", "orders", True, 1)]})
    body = assert_error(r, 400, "bad_request")
    assert "not a valid key" in body["detail"] and "mutation 0" in body["detail"]
    unchanged(shop)


def test_invalid_date_key_is_400(shop):
    r = shop.alice.post("/v1/push", {"mutations": [
        put("x", "shop", "orders", {"~d": "yesterday"}, 1)]})
    assert_error(r, 400, "bad_request")
    unchanged(shop)


def test_one_bad_mutation_rolls_back_the_whole_push(shop):
    r = shop.alice.post("/v1/push", {"mutations": [
        put("good", "shop", "orders", "new", {"v": 2}),
        put("bad", "shop", "orders", [{"nested": "object"}], 1)]})
    body = assert_error(r, 400, "bad_request")
    assert "mutation 1 (id bad)" in body["detail"]
    unchanged(shop)
    # and the good one's id was not remembered: sending it alone applies it
    [res] = shop.alice.push([put("good", "shop", "orders", "new", {"v": 2})])
    assert res["status"] == "ok"


def test_mutation_without_id_is_400(shop):
    m = put("x", "shop", "orders", 1, 1)
    del m["id"]
    assert_push_refused(shop, m)


def test_mutation_with_unknown_op_is_400(shop):
    m = put("x", "shop", "orders", 1, 1)
    m["op"] = "upsert"
    assert_push_refused(shop, m)


def test_put_without_value_is_400(shop):
    m = put("x", "shop", "orders", 1, 1)
    del m["value"]
    assert_push_refused(shop, m)


def test_base_that_is_not_a_revision_is_400(shop):
    m = put("x", "shop", "orders", "kept", 1, base="1")
    assert_push_refused(shop, m)


def without(m, name):
    return {k: v for k, v in m.items() if k != name}


GOOD = put("x", "shop", "orders", 1, 1)


@pytest.mark.parametrize("m, says", [
    (without(GOOD, "id"), "id is a non-empty string"),
    ({**GOOD, "id": ""}, "id is a non-empty string"),
    ({**GOOD, "id": "x" * 257}, "id is a non-empty string"),
    ({**GOOD, "id": 7}, "id is a non-empty string"),
    ({**GOOD, "db": 1}, "db and store are strings"),
    ({**GOOD, "op": "upsert"}, 'op is "put" or "delete"'),
    ({**GOOD, "op": None}, 'op is "put" or "delete"'),
    ({**GOOD, "base": -1}, "base is null or a revision number"),
    ({**GOOD, "base": 1.5}, "base is null or a revision number"),
    (without(GOOD, "value"), "a put needs a value"),
    ({**without(GOOD, "value"), "op": "delete", "key": None}, "a delete needs a key"),
])
def test_a_broken_mutation_is_refused_alike_however_it_is_written(shop, m, says):
    """A mutation written plainly (each member once, no escapes) is read
    without jansson, any other by jansson: both readings apply the same
    rules and say the same, in a short push (read by the writer) and in a
    long one (read ahead by the push's own thread)."""
    plain = json.dumps(m)
    escaped = plain.replace('"op":', '"\\u006fp":', 1)  # "op" with an escape
    assert escaped != plain
    good = [json.dumps(put("g%d" % i, "shop", "orders", "g%d" % i, i)) for i in range(20)]
    for before in ([], good):
        details = []
        for text in (plain, escaped):
            body = '{"mutations": [%s]}' % ", ".join(before + [text])
            details.append(assert_error(shop.alice.post("/v1/push", body), 400,
                                        "bad_request")["detail"])
            unchanged(shop)
        assert details[0] == details[1], details
        assert "mutation %d" % len(before) in details[0] and says in details[0], details


def test_out_of_line_put_without_key_is_400(shop):
    m = {"id": "x", "db": "shop", "store": "orders", "op": "put", "value": 1}
    body = assert_push_refused(shop, m)
    assert "needs a key" in body["detail"]


def test_inline_key_that_disagrees_with_the_value_is_400(shop):
    shop.alice.schema("shop", [{"name": "people", "keyPath": "email"}])
    m = put("x", "shop", "people", "a@x", {"email": "b@x"})
    assert_error(shop.alice.post("/v1/push", {"mutations": [m]}), 400, "bad_request")


def test_unknown_store_is_404(shop):
    r = shop.alice.post("/v1/push", {"mutations": [put("x", "shop", "nope", 1, 1)]})
    body = assert_error(r, 404, "not_found")
    assert "nope" in body["detail"]
    unchanged(shop)


def test_unknown_database_is_404(shop):
    r = shop.alice.post("/v1/push", {"mutations": [put("x", "nodb", "orders", 1, 1)]})
    assert_error(r, 404, "not_found")
    unchanged(shop)


def test_unknown_endpoint_is_404(shop):
    assert_error(shop.alice.get("/v1/nothing"), 404, "not_found")
    assert_error(shop.anonymous.get("/etc/passwd"), 404, "not_found")


def test_wrong_method_is_405(shop):
    r = shop.alice.get("/v1/push")
    assert_error(r, 405, "method_not_allowed")
    assert r.header("allow") == "POST, OPTIONS"
    assert_error(shop.alice.post("/v1/pull", {}), 405, "method_not_allowed")


def test_body_over_the_limit_is_413_from_content_length(start_sync):
    s = start_sync(["--max-body", "64k"])
    s.alice.schema("shop", ORDERS)
    c = s.alice.connection()
    # Only the headers go out: the answer must come without the body.
    c.putrequest("POST", "/v1/push")
    c.putheader("Authorization", "Bearer " + s.tokens["alice"])
    c.putheader("Content-Length", str(64 * 1024 + 1))
    c.endheaders()
    r = c.getresponse()
    body = json.loads(r.read())
    assert r.status == 413 and body["error"] == "payload_too_large"
    c.close()


def test_body_over_the_limit_is_413_when_chunked(start_sync):
    s = start_sync(["--max-body", "64k"])
    s.alice.schema("shop", ORDERS)
    big = json.dumps({"mutations": [put("x", "shop", "orders", 1, "y" * 70000)]}).encode()
    c = s.alice.connection()
    c.putrequest("POST", "/v1/push")
    c.putheader("Authorization", "Bearer " + s.tokens["alice"])
    c.putheader("Transfer-Encoding", "chunked")
    c.endheaders()
    for i in range(0, len(big), 8192):
        part = big[i:i + 8192]
        c.send(b"%x\r\n%s\r\n" % (len(part), part))
    c.send(b"0\r\n\r\n")
    r = c.getresponse()
    body = json.loads(r.read())
    assert r.status == 413 and body["error"] == "payload_too_large"
    c.close()
    assert not os.path.exists(s.path("alice", "shop", "orders", "1.json"))


def test_record_over_the_record_cap_is_413(start_sync):
    s = start_sync()
    s.daemon.stop()
    s.daemon.start(options=["max_record=1k"])
    s.port = s.daemon.port()
    s.alice = s.api("alice")
    s.alice.schema("shop", ORDERS)
    r = s.alice.post("/v1/push", {"mutations": [put("x", "shop", "orders", 1, "y" * 2000)]})
    assert_error(r, 413, "payload_too_large")


def test_bad_keypath_in_schema_is_400(shop):
    r = shop.alice.post("/v1/schema", {"db": "shop", "version": 1,
                                       "stores": [{"name": "s", "keyPath": "a..b"}]})
    assert_error(r, 400, "bad_request")
    assert "s" not in os.listdir(shop.path("alice", "shop"))


def test_autoincrement_with_array_keypath_is_400(shop):
    r = shop.alice.post("/v1/schema", {"db": "shop", "version": 1, "stores": [
        {"name": "s", "keyPath": ["a", "b"], "autoIncrement": True}]})
    assert_error(r, 400, "bad_request")


def test_bad_index_in_schema_is_400(shop):
    r = shop.alice.post("/v1/schema", {"db": "shop", "version": 1, "stores": [
        {"name": "s", "indexes": [{"name": "i"}]}]})
    assert_error(r, 400, "bad_request")


def test_schema_without_db_is_400(shop):
    assert_error(shop.alice.post("/v1/schema", {"version": 1, "stores": []}), 400, "bad_request")


def test_schema_with_bad_version_is_400(shop):
    assert_error(shop.alice.post("/v1/schema", {"db": "x", "version": 0}), 400, "bad_request")
    assert sorted(os.listdir(shop.path("alice"))) == ["shop"]


def test_changing_the_keypath_of_a_store_with_records_is_409(shop):
    r = shop.alice.post("/v1/schema", {"db": "shop", "version": 2,
                                       "stores": [{"name": "orders", "keyPath": "id"}]})
    assert_error(r, 409, "conflict")
    assert os.getxattr(shop.path("alice", "shop", "orders"), "user.idbmount.keypath") == b"null"


def test_keypath_of_an_empty_store_may_change(shop):
    shop.alice.schema("shop", [{"name": "empty"}])
    answer = shop.alice.schema("shop", [{"name": "empty", "keyPath": "id"}])
    assert [s for s in answer["stores"] if s["name"] == "empty"][0]["keyPath"] == "id"


@pytest.mark.parametrize("query,detail", [
    ("since=-1", "since must be a whole number from 0 to 9223372036854775807"),
    ("since=abc", "since must be a whole number from 0 to"),
    ("since=", "since must be a whole number from 0 to"),
    ("since=1e3", "since must be a whole number from 0 to"),
    ("limit=0", "limit must be a whole number from 1 to 10000"),
    ("limit=100000", "limit must be a whole number from 1 to 10000"),
])
def test_bad_pull_parameters_are_400(shop, query, detail):
    body = assert_error(shop.alice.get("/v1/pull?" + query), 400, "bad_request")
    assert body["detail"].startswith(detail), body


def test_bad_changes_parameters_are_400(shop):
    token = shop.ctl("pipeline", "add", "p").stdout.strip()
    assert_error(shop.anonymous.get("/v1/changes?since=x", token=token), 400, "bad_request")
    for limit in ("-5", "0"):
        body = assert_error(shop.anonymous.get("/v1/changes?limit=" + limit, token=token),
                            400, "bad_request")
        assert body["detail"] == "limit must be a whole number from 1 to 1000000", body


def test_bad_events_since_is_400(shop):
    assert_error(shop.alice.get("/v1/events?since=minus"), 400, "bad_request")


@pytest.mark.parametrize("path, body", [
    ("/v1/schema", {"db": "shop\u0000x", "stores": [{"name": "orders"}]}),
    ("/v1/schema", {"db": "shop", "stores": [{"name": "orders\u0000x"}]}),
    ("/v1/schema", {"db": "shop", "stores": [{"name": "s", "keyPath": "a\u0000b"}]}),
    ("/v1/schema", {"client": "alice\u0000x", "db": "shop"}),
    ("/v1/push", {"mutations": [put("n1", "shop\u0000x", "orders", "k", 1)]}),
    ("/v1/push", {"mutations": [put("n2", "shop", "orders\u0000x", "k", 1)]}),
    ("/v1/push", {"mutations": [put("seed\u0000x", "shop", "orders", "k", 1)]}),
    ("/v1/push", {"client": "alice\u0000x", "mutations": [put("n3", "shop", "orders", "k", 1)]}),
])
def test_names_holding_nul_are_400(shop, path, body):
    """"shop\\u0000x" is not "shop": a name (or id) that holds U+0000 is
    refused, never cut at the NUL and taken for another."""
    detail = assert_error(shop.alice.post(path, body), 400, "bad_request")["detail"]
    assert "U+0000" in detail, detail
    unchanged(shop)
    assert os.listdir(shop.path("alice")) == ["shop"]
    assert os.listdir(shop.path("alice", "shop")) == ["orders"]


@pytest.mark.parametrize("body", ['{"mutations\\u0000": [%s]}',
                                  '{"mutations": [%s], "client\\u0000x": "bob"}',
                                  '{"mut\\u0000ations": 1, "mutations": [%s]}'])
def test_a_member_name_holding_nul_in_a_push_body_is_400(shop, body):
    """A push body is split into its members without jansson; a member name
    holding U+0000, which jansson refuses in a name, is refused as jansson
    refuses it, never cut at the NUL and taken for "mutations" or
    "client"."""
    text = body % json.dumps(put("n4", "shop", "orders", "k", 1))
    detail = assert_error(shop.alice.post("/v1/push", text), 400, "bad_request")["detail"]
    assert "malformed JSON" in detail and "NUL byte in object key" in detail, detail
    unchanged(shop)


def test_a_bad_mutations_member_given_before_another_is_400(shop):
    """jansson keeps the last of a member given twice, but reads the first
    too: a push whose first "mutations" array is no JSON is refused, not
    applied with the second."""
    good = json.dumps(put("n5", "shop", "orders", "k", 1))
    for text in ('{"mutations": [.1], "mutations": [%s]}' % good,
                 '{"mutations": [{"id": tru}], "mutations": [%s]}' % good):
        detail = assert_error(shop.alice.post("/v1/push", text), 400, "bad_request")["detail"]
        assert "malformed JSON" in detail, detail
        unchanged(shop)


def test_a_query_parameter_holding_nul_is_400(shop):
    detail = assert_error(shop.alice.get("/v1/pull?since=0&client=alice%00x"), 400,
                          "bad_request")["detail"]
    assert "U+0000" in detail, detail


@pytest.mark.parametrize("query", ["since=0&client=alice&client=bob",
                                   "client=bob&since=0&client=alice",
                                   "since=0&since=5", "since=0&limit=1&limit=2", "a&a"])
def test_a_repeated_query_parameter_is_400(shop, query):
    """Only one value of a parameter is read: a request that gives two
    could pass a check with one and act on the other."""
    for path in ("/v1/pull?", "/v1/events?", "/healthz?"):
        detail = assert_error(shop.alice.get(path + query), 400, "bad_request")["detail"]
        assert "more than once" in detail, detail
