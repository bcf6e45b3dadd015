"""The sync protocol's happy paths (src/DESIGN.md, "Sync protocol"), checked
against what the mount and idbmountctl show."""
import json
import os

from conftest import SOURCE_DIR, delete, put


ORDERS = [{"name": "orders", "keyPath": None, "autoIncrement": False, "indexes": []}]


def read(path):
    with open(path) as f:
        return f.read()


def test_schema_makes_database_and_stores_on_the_mount(sync):
    answer = sync.alice.schema("shop", [
        {"name": "orders", "keyPath": "id", "autoIncrement": True,
         "indexes": [{"name": "by_day", "keyPath": "day", "unique": False}]},
        {"name": "notes"},
    ], version=3)
    assert answer == {"db": "shop", "version": 3, "stores": [
        {"name": "notes", "keyPath": None, "autoIncrement": False, "indexes": []},
        {"name": "orders", "keyPath": "id", "autoIncrement": True,
         "indexes": [{"name": "by_day", "keyPath": "day", "unique": False}]},
    ]}
    assert sorted(os.listdir(sync.path("alice", "shop"))) == ["notes", "orders"]
    assert os.getxattr(sync.path("alice", "shop", "orders"),
                       "user.idbmount.keypath") == b'"id"'
    # The same schema again changes nothing and keeps the version.
    assert sync.alice.schema("shop", answer["stores"], version=3) == answer


def test_empty_database_and_store_names_sync_as_indexeddb_allows(sync):
    """IndexedDB allows "" as a database and a store name: such a database
    syncs like any other, and shows as `~s`, the key codec's name for the
    empty string."""
    answer = sync.alice.schema("", [{"name": ""}])
    assert answer["db"] == "" and [s["name"] for s in answer["stores"]] == [""]
    assert sync.alice.push([put("e1", "", "", "k", {"a": 1})])[0]["status"] == "ok"
    with open(sync.path("alice", "~s", "~s", "k.json")) as f:
        assert json.load(f) == {"a": 1}
    with open(sync.path("alice", "~s", "~s", "j.json"), "w") as f:
        f.write('{"b": 2}')
    changes = sync.alice.pull()["changes"]
    assert [(c["db"], c["store"], c["key"], c["value"]) for c in changes] == [
        ("", "", "k", {"a": 1}), ("", "", "j", {"b": 2})]


def test_schema_answer_includes_stores_made_elsewhere_with_a_new_version(sync):
    sync.alice.schema("shop", ORDERS, version=1)
    sync.ctl("mkstore", "alice/shop/returns", "--keypath", '"rid"')
    os.mkdir(sync.path("alice", "shop", "made_on_mount"))
    answer = sync.alice.schema("shop", ORDERS, version=1)
    assert [s["name"] for s in answer["stores"]] == ["made_on_mount", "orders", "returns"]
    assert answer["version"] > 1
    assert answer["stores"][2]["keyPath"] == "rid"


def test_push_put_writes_the_file_as_idbmountctl_would(sync):
    sync.alice.schema("shop", ORDERS)
    value = {"item": "tea", "qty": 2, "price": 0.1, "tags": ["a", "é"], "n": None}
    [res] = sync.alice.push([put("m1", "shop", "orders", 7, value, base=None)])
    assert res == {"id": "m1", "status": "ok", "rev": 1, "seq": res["seq"]}
    sync.ctl("put", "alice/shop/orders", "8", json.dumps(value))
    browser = read(sync.path("alice", "shop", "orders", "7.json"))
    assert browser == read(sync.path("alice", "shop", "orders", "8.json"))
    assert browser.startswith('{\n  "item": "tea",\n')
    assert json.loads(browser) == value
    assert os.getxattr(sync.path("alice", "shop", "orders", "7.json"),
                       "user.idbmount.origin") == b"browser"
    last = sync.changes()[-2]
    assert last["key"] == 7 and last["origin"] == "browser" and last["value"] == value


def test_pushed_changes_show_in_the_mount_when_the_answer_comes(sync):
    # src/DESIGN.md, "The tree": a change over HTTP is visible to the next
    # read at once, even where the kernel had cached the name as absent or
    # the old pages.
    sync.alice.schema("shop", ORDERS)
    path = sync.path("alice", "shop", "orders", "9.json")
    for round_ in range(20):
        assert not os.path.exists(path)  # caches "no such file"
        [res] = sync.alice.push([put("a%d" % round_, "shop", "orders", 9, {"r": round_})])
        assert res["status"] == "ok"
        assert json.loads(read(path)) == {"r": round_}
        [res] = sync.alice.push([put("b%d" % round_, "shop", "orders", 9, {"r": -round_})])
        assert json.loads(read(path)) == {"r": -round_}  # not the cached pages
        [res] = sync.alice.push([delete("c%d" % round_, "shop", "orders", 9)])
        assert res["status"] == "ok"


def test_push_of_every_key_type_names_files_by_the_key_codec(sync):
    sync.alice.schema("shop", ORDERS)
    cases = [
        (5, "5.json"),
        (-1.5, "-1.5.json"),
        ("alice", "alice.json"),
        ("a/b", "a%2Fb.json"),
        ("42", "%342.json"),
        ({"~d": "2026-01-02T03:04:05.000Z"}, "~d2026-01-02T03:04:05.000Z.json"),
        ({"~b": "AAEC"}, "~bAAEC.json"),
        (["u1", 7], '~a["u1",7].json'),
    ]
    sync.alice.push([put("k%d" % i, "shop", "orders", k, {"i": i})
                     for i, (k, _) in enumerate(cases)])
    names = set(os.listdir(sync.path("alice", "shop", "orders")))
    assert names == {name for _, name in cases}
    pulled = sync.alice.pull(0)["changes"]
    assert [c["key"] for c in pulled] == [k for k, _ in cases]


def test_push_delete_removes_the_file_and_answers_the_tombstone_revision(sync):
    sync.alice.schema("shop", ORDERS)
    sync.alice.push([put("m1", "shop", "orders", "a", 1)])
    [res] = sync.alice.push([delete("m2", "shop", "orders", "a", base=1)])
    assert res["status"] == "ok" and res["rev"] == 2 and res["seq"] > 0
    assert not os.path.exists(sync.path("alice", "shop", "orders", "a.json"))
    # Deleting what is not there is fine and logs nothing.
    [res] = sync.alice.push([delete("m3", "shop", "orders", "never")])
    assert res == {"id": "m3", "status": "ok", "rev": 0, "seq": 0}


def test_retried_push_is_applied_once_and_answered_as_the_first_time(sync):
    sync.alice.schema("shop", ORDERS)
    batch = [put("r1", "shop", "orders", "x", {"v": 1}, base=None),
             put("r2", "shop", "orders", "y", {"v": 2}, base=None),
             put("r1", "shop", "orders", "x", {"v": 99})]  # same id in one batch
    first = sync.alice.push(batch)
    assert first[2] == first[0]
    before = sync.changes()
    again = sync.alice.push(batch)
    assert again == first
    assert sync.changes() == before
    assert json.loads(read(sync.path("alice", "shop", "orders", "x.json"))) == {"v": 1}


def test_conflicts_answer_the_current_record(sync):
    sync.alice.schema("shop", ORDERS)
    sync.alice.push([put("a1", "shop", "orders", "k", {"v": 1}, base=None)])
    # Someone edits the file on the mount: rev 2.
    with open(sync.path("alice", "shop", "orders", "k.json"), "w") as f:
        f.write('{"v": "edited"}\n')
    res = sync.alice.push([
        put("a2", "shop", "orders", "k", {"v": 2}, base=1),       # stale base
        put("a3", "shop", "orders", "k", {"v": 3}, base=None),    # "new" but exists
        delete("a4", "shop", "orders", "k", base=1),              # stale delete
        put("a5", "shop", "orders", "other", {"v": 5}, base=None),  # fine
    ])
    current = {"rev": 2, "value": {"v": "edited"}, "deleted": False}
    assert res[0] == {"id": "a2", "status": "conflict", "current": current}
    assert res[1] == {"id": "a3", "status": "conflict", "current": current}
    assert res[2] == {"id": "a4", "status": "conflict", "current": current}
    assert res[3]["status"] == "ok"
    assert json.loads(read(sync.path("alice", "shop", "orders", "k.json"))) == {"v": "edited"}
    # With the right base the write goes through.
    [ok] = sync.alice.push([put("a6", "shop", "orders", "k", {"v": 6}, base=2)])
    assert ok["status"] == "ok" and ok["rev"] == 3
    # A retried conflict is answered the same, even though base 1... is
    # still stale; a deleted record conflicts as deleted.
    assert sync.alice.push([put("a2", "shop", "orders", "k", {"v": 2}, base=1)])[0] == res[0]
    os.unlink(sync.path("alice", "shop", "orders", "k.json"))
    [gone] = sync.alice.push([put("a7", "shop", "orders", "k", {"v": 7}, base=3)])
    assert gone == {"id": "a7", "status": "conflict",
                    "current": {"rev": 4, "value": None, "deleted": True}}
    # base null on a deleted record is no conflict: the browser saw none.
    [fresh] = sync.alice.push([put("a8", "shop", "orders", "k", {"v": 8}, base=None)])
    assert fresh["status"] == "ok" and fresh["rev"] == 5


def test_autoincrement_generates_keys_and_puts_them_in_the_value(sync):
    sync.alice.schema("shop", [{"name": "orders", "keyPath": "id", "autoIncrement": True}])
    sync.ctl("put", "alice/shop/orders", "2", '{"id": 2, "by": "ctl"}')
    res = sync.alice.push([
        {"id": "g1", "db": "shop", "store": "orders", "op": "put", "value": {"x": 1}},
        {"id": "g2", "db": "shop", "store": "orders", "op": "put", "value": {"x": 2}},
        {"id": "g3", "db": "shop", "store": "orders", "op": "put", "value": {"id": 10, "x": 3}},
        {"id": "g4", "db": "shop", "store": "orders", "key": None, "op": "put",
         "value": {"x": 4}},
    ])
    assert [r.get("key") for r in res] == [1, 3, None, 11]
    assert json.loads(read(sync.path("alice", "shop", "orders", "3.json"))) == {"x": 2, "id": 3}
    assert json.loads(read(sync.path("alice", "shop", "orders", "2.json")))["by"] == "ctl"
    assert sorted(os.listdir(sync.path("alice", "shop", "orders"))) == [
        "1.json", "10.json", "11.json", "2.json", "3.json"]


def test_inline_keys_come_from_the_value(sync):
    sync.alice.schema("shop", [{"name": "people", "keyPath": "email"}])
    [res] = sync.alice.push([{"id": "p1", "db": "shop", "store": "people", "op": "put",
                              "value": {"email": "a@x", "n": 1}}])
    assert res["status"] == "ok" and "key" not in res
    assert os.path.exists(sync.path("alice", "shop", "people", "a@x.json"))


def test_pull_pages_through_changes_with_a_checkpoint(sync):
    sync.alice.schema("shop", ORDERS)
    sync.alice.push([put("p%d" % i, "shop", "orders", i, {"i": i}) for i in range(25)])
    got, since, pages = [], 0, 0
    while True:
        page = sync.alice.pull(since, limit=10)
        pages += 1
        got += page["changes"]
        since = page["checkpoint"]
        if not page["more"]:
            break
    assert pages == 3
    assert [c["key"] for c in got] == list(range(25))
    assert all(c["op"] == "put" and c["value"] == {"i": c["key"]} and c["rev"] == 1
               and c["db"] == "shop" and c["store"] == "orders" for c in got)
    assert [c["seq"] for c in got] == sorted(c["seq"] for c in got)
    assert sync.alice.pull(since) == {"changes": [], "checkpoint": since, "more": False,
                                      "epoch": page["epoch"]}


def test_pull_includes_changes_made_on_the_mount_and_by_idbmountctl(sync):
    sync.alice.schema("shop", ORDERS)
    sync.alice.push([put("m1", "shop", "orders", "a", {"v": 1}),
                     put("m2", "shop", "orders", "b", {"v": 2})])
    cp = sync.alice.pull(0)["checkpoint"]
    with open(sync.path("alice", "shop", "orders", "c.json"), "w") as f:
        f.write('{"v": 3}\n')
    os.unlink(sync.path("alice", "shop", "orders", "a.json"))
    sync.ctl("put", "alice/shop/orders", '"b"', '{"v": 22}')
    page = sync.alice.pull(cp)
    assert [(c["key"], c["op"], c.get("value"), c["origin"]) for c in page["changes"]] == [
        ("c", "put", {"v": 3}, "fs"),
        ("a", "delete", None, "fs"),
        ("b", "put", {"v": 22}, "import"),
    ]
    assert "value" not in page["changes"][1]


def test_pull_sends_each_records_latest_change_and_no_old_tombstones(sync):
    sync.alice.schema("shop", ORDERS)
    for i in range(5):
        sync.alice.push([put("v%d" % i, "shop", "orders", "hot", {"v": i})])
    sync.alice.push([put("d1", "shop", "orders", "gone", 1), delete("d2", "shop", "orders", "gone")])
    snapshot = sync.alice.pull(0)["changes"]
    assert [(c["key"], c["rev"], c["value"]) for c in snapshot] == [("hot", 5, {"v": 4})]


def test_pipeline_changes_stream_the_change_lines(sync):
    sync.alice.schema("shop", ORDERS)
    sync.alice.push([put("c%d" % i, "shop", "orders", i, {"i": i}) for i in range(30)])
    sync.bob.schema("home", ORDERS)
    sync.bob.push([put("b1", "home", "orders", "x", {"b": True})])
    token = sync.ctl("pipeline", "add", "flink").stdout.strip()
    assert len(token) == 64
    assert sync.ctl("pipeline", "list").stdout == "flink\n"
    r = sync.anonymous.get("/v1/changes?since=0&limit=1000000", token=token)
    assert r.status == 200, r
    assert r.header("content-type") == "application/x-ndjson"
    expected = sync.ctl("log", "--since", "0").stdout
    assert r.body.decode() == expected
    lines = r.body.decode().splitlines()
    assert len(lines) == 31
    r = sync.anonymous.get("/v1/changes?since=%d&limit=5" % json.loads(lines[9])["seq"],
                           token=token)
    assert [json.loads(x)["seq"] for x in r.body.decode().splitlines()] == \
        [json.loads(x)["seq"] for x in lines[10:15]]
    r = sync.anonymous.get("/v1/changes?since=%d" % json.loads(lines[-1])["seq"], token=token)
    assert r.status == 200 and r.body == b""


def test_pipeline_token_reads_changes_only(sync):
    token = sync.ctl("pipeline", "add", "nifi").stdout.strip()
    for method, path, body in [("POST", "/v1/schema", {"db": "x"}),
                               ("POST", "/v1/push", {"mutations": []}),
                               ("GET", "/v1/pull?since=0", None),
                               ("GET", "/v1/events?since=0", None)]:
        r = sync.anonymous.request(method, path, body=body, token=token)
        assert r.status == 403, (path, r)
        assert r.json()["error"] == "forbidden"
    # and a client token may not read the global log
    r = sync.alice.get("/v1/changes?since=0")
    assert r.status == 403 and r.json()["error"] == "forbidden"


def test_static_files_are_the_embedded_web_files(sync):
    for path, name, ctype in [("/", "demo.html", "text/html; charset=utf-8"),
                              ("/idbmount.js", "idbmount.js", "text/javascript; charset=utf-8"),
                              ("/idbmount.d.ts", "idbmount.d.ts",
                               "application/typescript; charset=utf-8")]:
        r = sync.anonymous.get(path)
        assert r.status == 200, (path, r)
        assert r.header("content-type") == ctype
        with open(os.path.join(SOURCE_DIR, "src", "web", name), "rb") as f:
            assert r.body == f.read()
        etag = r.header("etag")
        again = sync.anonymous.get(path, headers={"If-None-Match": etag})
        assert again.status == 304 and again.body == b""


def test_healthz_is_json_with_the_epoch_and_last_seq(sync):
    r = sync.anonymous.get("/healthz")
    assert r.status == 200
    body = r.json()
    assert body["status"] == "ok"
    assert len(body["epoch"]) == 16 and body["last_seq"] == 0


def test_metrics_are_prometheus_text(sync):
    sync.alice.schema("shop", ORDERS)
    sync.alice.push([put("m1", "shop", "orders", 1, 1), put("m2", "shop", "orders", 1, 2, base=None)])
    r = sync.anonymous.get("/metrics")
    assert r.status == 200
    assert r.header("content-type") == "text/plain; version=0.0.4; charset=utf-8"
    import re
    sample = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{[a-zA-Z_][a-zA-Z0-9_]*="[^"]*"'
                        r'(,[a-zA-Z_][a-zA-Z0-9_]*="[^"]*")*\})? -?[0-9.eE+]+$')
    typed, values = set(), {}
    for line in r.body.decode().splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert kind in ("counter", "gauge")
            typed.add(name)
        elif line.startswith("# HELP "):
            continue
        else:
            assert sample.match(line), line
            name = line.split("{")[0].split(" ")[0]
            assert name in typed, line
            values[line.rsplit(" ", 1)[0]] = float(line.rsplit(" ", 1)[1])
    assert values['idbmount_sync_mutations_total{status="ok"}'] == 1
    assert values['idbmount_sync_mutations_total{status="conflict"}'] == 1
    assert values['idbmount_http_requests_total{route="push",code="2xx"}'] == 1
    assert values["idbmount_changes_last_seq"] == 1
    assert "alice" not in r.body.decode() and "shop" not in r.body.decode()


def test_long_push_with_spacing_repeats_and_two_stores(sync):
    # The body splitter against what jansson takes: any JSON whitespace, a
    # repeated "mutations" member (the last counts), other members kept,
    # and mutations for two stores interleaved (the second thread learns a
    # store's key path only after the first mutation of it).
    sync.alice.schema("two", [{"name": "a"}, {"name": "b", "keyPath": "id"}])
    first = [put("x%d" % i, "two", "a", "x%d" % i, {"n": i}) for i in range(30)]
    second = []
    for i in range(60):
        if i % 2:
            second.append(put("a%d" % i, "two", "a", "k%d" % i, {"n": i, "s": "\u00e9\n"}))
        else:
            second.append(put("b%d" % i, "two", "b", i, {"id": i, "n": [i, 1.5, None]}))
    text = ('\r\n{ "client" : "alice" ,\t"mutations" :\n' + json.dumps(first, indent=1) +
            ', "mutations":[ ' + " ,\n ".join(json.dumps(m) for m in second) + ' ] }\n')
    r = sync.alice.post("/v1/push", text)
    assert r.status == 200, r
    results = r.json()["results"]
    assert [x["id"] for x in results] == [m["id"] for m in second]
    assert all(x["status"] == "ok" for x in results)
    assert not os.path.exists(sync.path("alice", "two", "a", "x0.json"))
    with open(sync.path("alice", "two", "a", "k1.json")) as f:
        assert json.load(f) == {"n": 1, "s": "\u00e9\n"}
    with open(sync.path("alice", "two", "b", "4.json")) as f:
        assert json.load(f) == {"id": 4, "n": [4, 1.5, None]}
    # a retry of the same body is answered from memory, in order
    again = sync.alice.post("/v1/push", text).json()["results"]
    assert again == results


def test_a_long_push_answers_as_the_same_mutations_pushed_one_by_one(sync):
    # From 16 mutations on, a push is parsed and prepared on a second thread
    # ahead of the writer; one by one, everything happens in line. Both must
    # give the same answers and the same files, whatever the mix.
    stores = [{"name": "plain"}, {"name": "gen", "keyPath": "id", "autoIncrement": True},
              {"name": "inline", "keyPath": "k"}]

    def mix(db, tag):
        ms = []
        for i in range(70):
            mid = "%s%d" % (tag, i)
            kind = i % 7
            if kind == 0:
                ms.append(put(mid, db, "plain", "p%d" % (i // 2), {"i": i}, base=None))
            elif kind == 1:  # generated key
                ms.append({"id": mid, "db": db, "store": "gen", "op": "put",
                           "value": {"i": i}})
            elif kind == 2:  # explicit number key moves the generator
                ms.append(put(mid, db, "gen", i * 3, {"id": i * 3, "i": i}))
            elif kind == 3:  # key taken from the value
                ms.append({"id": mid, "db": db, "store": "inline", "op": "put",
                           "value": {"k": ["a", i], "i": i}})
            elif kind == 4:  # stale base: a conflict
                ms.append(put(mid, db, "plain", "p0", {"i": i}, base=99))
            elif kind == 5:  # delete something there, and something not
                ms.append(delete(mid, db, "plain", "p%d" % (i // 5)))
            else:  # the same id again: answered from memory
                ms.append(dict(ms[-3], id="%s%d" % (tag, i - 3)))
        return ms

    def strip(results, tag):
        out = []
        for r in results:
            r = dict(r, id=r["id"][len(tag):])
            r.pop("seq", None)
            out.append(r)
        return out

    sync.alice.schema("long", stores)
    sync.alice.schema("single", stores)
    long_ms = mix("long", "L")
    assert len(long_ms) >= 16
    long_results = strip(sync.alice.push(long_ms), "L")
    single_results = []
    for m in mix("single", "S"):
        single_results += sync.alice.push([m])
    assert long_results == strip(single_results, "S")
    for store in ("plain", "gen", "inline"):
        a, b = sync.path("alice", "long", store), sync.path("alice", "single", store)
        assert sorted(os.listdir(a)) == sorted(os.listdir(b)), store
        for name in os.listdir(a):
            assert read(os.path.join(a, name)) == read(os.path.join(b, name)), name


def test_a_long_push_lays_values_out_as_jansson_reads_them(sync):
    # Values are laid out straight from their text (json_text_pretty_text)
    # unless that is unsure; either way the file is what jansson reads: names
    # written with escapes, a name given twice (the last value counts, at
    # the first place), integers of 19 digits, decimals with trailing
    # zeros, escapes in strings, deep nesting, an inline key.
    sync.alice.schema("odd", [{"name": "plain"}, {"name": "people", "keyPath": "id"}])
    values = [
        '{"a": 1, "b": 2, "a": 3}',
        '{"n": 1234567890123456789, "m": -0, "d": 1.50, "e": 0.000001, "f": 1e-7}',
        '{"s": "caf\\u00e9 \\ud83d\\ude00 \\/ \\t", "t": "\\u0000"}',
        '[[[[[[[[[[{"deep": true}]]]]]]]]]]',
        '{"x": [], "y": {}, "z": [ 1 , 2 ]}',
    ]
    texts = []
    for i in range(20):
        value = values[i % len(values)]
        # "id", "value" and "key" written with escapes in every other one
        names = ('"\\u0069d"', '"v\\u0061lue"', '"k\\u0065y"') if i % 2 else (
            '"id"', '"value"', '"key"')
        texts.append('{%s: "m%d", "db": "odd", "store": "plain", %s: "k%d", "op": "put", '
                     '%s: %s}' % (names[0], i, names[2], i, names[1], value))
    texts.append('{"id": "p", "db": "odd", "store": "people", "key": 7, "op": "put", '
                 '"value": {"name": "seven", "id": 7.0}}')
    r = sync.alice.post("/v1/push", '{"mutations": [' + ",\n".join(texts) + "]}")
    assert r.status == 200, r
    assert all(x["status"] == "ok" for x in r.json()["results"]), r.json()
    for i in range(20):
        want = json.loads(values[i % len(values)])
        text = read(sync.path("alice", "odd", "plain", "k%d.json" % i))
        assert json.loads(text) == want, (i, text)
        if i % len(values) != 1:  # Python writes 1e-07 where JSON.stringify writes 1e-7
            assert text == json.dumps(want, indent=2, ensure_ascii=False) + "\n", (i, text)
    assert read(sync.path("alice", "odd", "plain", "k1.json")) == (
        '{\n  "n": 1234567890123456789,\n  "m": 0,\n  "d": 1.5,\n  "e": 0.000001,\n'
        '  "f": 1e-7\n}\n')
    assert read(sync.path("alice", "odd", "plain", "k0.json")) == '{\n  "a": 3,\n  "b": 2\n}\n'
    assert read(sync.path("alice", "odd", "people", "7.json")) == (
        '{\n  "name": "seven",\n  "id": 7\n}\n')


def test_a_mutation_with_members_of_its_own_is_applied(sync):
    # A member the protocol does not name (a client's own bookkeeping) is
    # read past, in a short push and a long one, as is a mutation whose
    # strings are written with escapes.
    sync.alice.schema("extra", [{"name": "plain"}])
    for n in (1, 20):
        texts = ['{"id": "e%d-%d", "db": "extra", "store": "plain", "key": "k%d", "op": "put", '
                 '"value": {"n": %d}, "ts": 1733500000000, "tags": ["a", {"b": null}]}'
                 % (n, i, i, i) for i in range(n)]
        texts.append('{"id": "e\\u00e9%d", "db": "\\u0065xtra", "store": "pl\\u0061in", '
                     '"key": "esc", "op": "p\\u0075t", "value": 1}' % n)
        r = sync.alice.post("/v1/push", '{"mutations": [' + ",\n".join(texts) + "]}")
        assert r.status == 200, r
        results = r.json()["results"]
        assert [x["status"] for x in results] == ["ok"] * (n + 1), results
        assert results[-1]["id"] == "e\u00e9%d" % n, results[-1]
        assert json.loads(read(sync.path("alice", "extra", "plain", "k%d.json" % (n - 1)))) == {
            "n": n - 1}
    assert json.loads(read(sync.path("alice", "extra", "plain", "esc.json"))) == 1


def test_numbers_past_64_bit_integers_are_read_as_javascript_reads_them(sync):
    """JSON.stringify writes 1e19 as 10000000000000000000 and 2**64 as
    18446744073709552000: no 64-bit integer holds them, JavaScript reads
    them as doubles, and so does a push, in a short one (parsed whole) and
    a long one (laid out from its text), as a value and as a key."""
    sync.alice.schema("big", [{"name": "plain"}, {"name": "people", "keyPath": "id"}])
    for n in (1, 20):
        texts = ['{"id": "b%d-%d", "db": "big", "store": "plain", "key": %d, "op": "put", '
                 '"value": {"v": 18446744073709552000, "w": -12345678901234567890}}'
                 % (n, i, i) for i in range(n)]
        texts.append('{"id": "p%d", "db": "big", "store": "people", "key": 10000000000000000000, '
                      '"op": "put", "value": {"name": "big"}}' % n)
        r = sync.alice.post("/v1/push", '{"mutations": [' + ",\n".join(texts) + "]}")
        assert r.status == 200, r
        assert all(x["status"] == "ok" for x in r.json()["results"]), r.json()
        assert read(sync.path("alice", "big", "plain", "%d.json" % (n - 1))) == (
            '{\n  "v": 18446744073709552000,\n  "w": -12345678901234567000\n}\n')
        assert read(sync.path("alice", "big", "people", "10000000000000000000.json")) == (
            '{\n  "name": "big",\n  "id": 10000000000000000000\n}\n')
    # A conflict answers with the record as it is.
    r = sync.alice.post("/v1/push", '{"mutations": [{"id": "c", "db": "big", "store": "plain", '
                        '"key": 0, "op": "put", "value": 1, "base": null}]}')
    assert r.json()["results"][0]["status"] == "conflict", r.json()
    assert r.json()["results"][0]["current"]["value"] == {"v": 18446744073709552000,
                                                          "w": -12345678901234567000}


def test_a_push_with_a_name_or_number_jansson_refuses_is_400(sync):
    sync.alice.schema("odd2", [{"name": "plain"}])
    sync.alice.push([put("first", "odd2", "plain", "first", 1)])
    seq0 = sync.changes()[-1]["seq"]
    good = ['{"id": "g%d", "db": "odd2", "store": "plain", "key": "g%d", "op": "put", '
            '"value": {"v": %d}}' % (i, i, i) for i in range(20)]
    for bad in ('{"a\\u0000b": 1}', '{"v": 1e400}', '{"v": "\\ud800"}'):
        texts = list(good)
        texts[12] = texts[12].replace('{"v": 12}', bad)
        r = sync.alice.post("/v1/push", '{"mutations": [' + ",\n".join(texts) + "]}")
        assert r.status == 400, (bad, r)
        assert "malformed JSON" in r.json()["detail"] and "line 13" in r.json()["detail"], r
        assert sync.changes()[-1]["seq"] == seq0

    # A member name of the mutation itself with an escape jansson refuses.
    texts = list(good)
    texts[12] = texts[12].replace('"op": "put"', '"op": "put", "i\\q": 1')
    r = sync.alice.post("/v1/push", '{"mutations": [' + ",\n".join(texts) + "]}")
    assert r.status == 400, r
    assert "malformed JSON" in r.json()["detail"] and "line 13" in r.json()["detail"], r
    assert sync.changes()[-1]["seq"] == seq0
