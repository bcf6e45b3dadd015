"""Three idbmount nodes behind nginx (TLS at nginx, clients routed by the
node their token names), their sinks sharing one spool directory and one
HDFS path: every change of every node arrives once in each, under names no
two nodes share; each client's data is on its own node only."""
import json
import os
import re
import socket
import ssl
import time

from conftest import NODES, fs_conftest, move_client, wait_for

# <prefix>-<node>-<epoch>-<first seq>-<last seq>.jsonl (src/flusher/batch.c)
BATCH_NAME = re.compile(r"idbmount-.+-([0-9a-f]{16})-(\d{20})-(\d{20})\.jsonl")


def put(mid, key, value):
    return {"id": mid, "db": "shop", "store": "orders", "key": key, "op": "put",
            "value": value}


def visible_files(root):
    out = []
    for dirpath, _, names in os.walk(root):
        out += [os.path.join(dirpath, n) for n in names if not n.startswith((".", "_"))]
    return out


def shipped(files, epochs):
    """(epoch, seq) of every line of every batch file, checking that each
    file's name carries one node's epoch and the seqs it holds."""
    seen = []
    for path in files:
        m = BATCH_NAME.fullmatch(os.path.basename(path))
        assert m, "not a batch name: " + path
        epoch, first, last = m.group(1), int(m.group(2)), int(m.group(3))
        assert epoch in epochs, "%s: epoch of no node" % path
        with open(path) as f:
            seqs = [json.loads(line)["seq"] for line in f]
        assert seqs and seqs[0] == first and seqs[-1] == last, path
        seen += [(epoch, s) for s in seqs]
    return seen


def test_tokens_carry_their_node_and_bad_node_names_are_refused(cluster):
    node = cluster.nodes["node-a"]
    token = node.add_client("alice")
    assert re.fullmatch(r"node-a\.[0-9a-f]{64}", token), token
    pipe = node.ctl("pipeline", "add", "flink", "--node", "node-a").stdout.strip()
    assert re.fullmatch(r"node-a\.[0-9a-f]{64}", pipe), pipe
    for bad, why in [("Node-A", "a-z, 0-9 and '-' only"), ("a.b", "a-z, 0-9 and '-' only"),
                     ("", "empty"), ("x" * 33, "longer than 32")]:
        for what in ("client", "pipeline"):
            p = node.ctl(what, "add", "bob", "--node", bad, check=False)
            assert p.returncode == 2, p
            assert "not a node name" in p.stderr and why in p.stderr, p.stderr
            assert p.stdout == ""
    assert node.ctl("client", "list").stdout.split() == ["alice"]
    assert node.ctl("pipeline", "list").stdout.split() == ["flink"]
    # The pipeline token is routed too: /v1/changes of its own node.
    r = cluster.api(pipe).get("/v1/changes?since=0")
    assert r.status == 200, r


def test_nginx_refuses_requests_it_cannot_route_with_json(cluster):
    alice = cluster.nodes["node-a"].add_client("alice")
    hexpart = alice.split(".", 1)[1]
    for token, detail in [(None, "Authorization: Bearer TOKEN"),
                          (hexpart, "names no node"),
                          ("node-x." + hexpart, "names no node")]:
        r = cluster.api(token).get("/v1/pull?since=0")
        assert r.status == 401, r
        assert r.header("content-type") == "application/json"
        assert r.header("www-authenticate") == 'Bearer realm="idbmount"'
        body = r.json()
        assert body["error"] == "unauthorized" and detail in body["detail"], body
    # A token with a known node but unknown there: the node's own 401.
    r = cluster.api("node-a." + "0" * 64).get("/v1/pull?since=0")
    assert r.status == 401 and r.json()["detail"] == "unknown token", r
    # A token of node-a sent with node-b's prefix reaches node-b, which
    # does not know it.
    r = cluster.api("node-b." + hexpart).get("/v1/pull?since=0")
    assert r.status == 401 and r.json()["detail"] == "unknown token", r
    # What needs no token is served by some node.
    r = cluster.api(None).get("/healthz")
    assert r.status == 200 and r.json()["status"] == "ok", r
    r = cluster.api(None).get("/idbmount.js")
    assert r.status == 200 and b"export" in r.body
    r = cluster.api(None).get("/metrics")
    assert r.status == 404 and r.header("content-type") == "application/json", r


def test_each_client_reaches_its_node_and_every_change_ships_once(cluster):
    clients = {}  # name -> (node, token)
    for node_name in NODES:
        for i in range(2):
            name = "%s-user%d" % (node_name, i)
            clients[name] = (node_name, cluster.nodes[node_name].add_client(name))
    for name, (node_name, token) in clients.items():
        api = cluster.api(token)
        api.schema("shop", [{"name": "orders", "keyPath": None}])
        for batch in range(3):
            results = api.push([put("%s-%d-%d" % (name, batch, k), k + 10 * batch,
                                    {"who": name, "batch": batch, "k": k})
                                for k in range(10)])
            assert all(r["status"] == "ok" for r in results), results

    # Each client's records are in its own node's mount, and nowhere else.
    for name, (node_name, _) in clients.items():
        for other_name, other in cluster.nodes.items():
            there = os.path.isdir(os.path.join(other.mnt, name))
            assert there == (other_name == node_name), (name, other_name)
        store = os.path.join(cluster.nodes[node_name].mnt, name, "shop", "orders")
        names = sorted(os.listdir(store))
        assert len(names) == 30
        with open(os.path.join(store, "25.json")) as f:
            assert json.load(f) == {"who": name, "batch": 2, "k": 5}

    # Events through nginx, unbuffered: an edit on the mount reaches a
    # client's stream (token in the header, then in the query).
    node_name, token = clients["node-b-user1"]
    since = cluster.api(token).pull(0)["checkpoint"]
    for query_token in (False, True):
        stream = EventStream(cluster, token, since, query_token)
        try:
            wait_for("the stream's first comment through nginx",
                     lambda: b": connected" in stream.read_some(), timeout=60)
            assert stream.received.startswith(b"HTTP/1.1 200"), stream.received
            path = os.path.join(cluster.nodes[node_name].mnt, "node-b-user1", "shop", "orders",
                                "edited-%s.json" % str(query_token).lower())
            with open(path, "w") as f:
                f.write('{"from":"mount"}\n')
            wait_for("the mount's edit on the event stream through nginx",
                     lambda: b"event: change" in stream.read_some(), timeout=60)
        finally:
            stream.close()
        since = cluster.api(token).pull(since)["checkpoint"]

    # Every change of every node, exactly once in the spool and in HDFS.
    epochs = {}
    expected = []
    for node in cluster.nodes.values():
        node.wait_caught_up()
        epoch = node.healthz()["epoch"]
        epochs[epoch] = node.name
        expected += [(epoch, c["seq"]) for c in node.log()]
    assert len(epochs) == 3
    assert len(expected) == len(set(expected)) == 6 * 30 + 2
    for where, root in (("spool", cluster.spool), ("hdfs", cluster.hdfs_root)):
        files = visible_files(root)
        names = [os.path.basename(f) for f in files]
        # No two nodes wrote one name: each name is there once and carries
        # its node's epoch; every node has batches of its own.
        assert len(set(names)) == len(names), where
        assert {BATCH_NAME.fullmatch(n).group(1) for n in names} == set(epochs), where
        seen = shipped(files, epochs)
        assert sorted(seen) == sorted(expected), where
        assert len(seen) == len(set(seen)), where


def test_a_quiet_event_stream_outlives_nginx_s_default_read_timeout(start_cluster):
    """With keep-alive comments only once an hour, a stream is silent for
    longer than nginx's default proxy_read_timeout (60 s): the config's
    long timeout keeps it open, and a change still arrives on it."""
    cluster = start_cluster(["--keepalive", "3600"])
    node = cluster.nodes["node-c"]
    token = node.add_client("carol")
    api = cluster.api(token)
    api.schema("shop", [{"name": "orders", "keyPath": None}])
    since = api.pull(0)["checkpoint"]
    stream = EventStream(cluster, token, since, False)
    try:
        wait_for("the stream's first comment through nginx",
                 lambda: b": connected" in stream.read_some(), timeout=60)
        quiet_until = time.monotonic() + 75
        while time.monotonic() < quiet_until:
            stream.read_some()  # fails if nginx closes the stream
        assert b"event: change" not in stream.received
        api.push([put("late", 1, {"after": "75 s of silence"})])
        wait_for("the change on the quiet stream",
                 lambda: b"event: change" in stream.read_some(), timeout=60)
    finally:
        stream.close()


class EventStream:
    """GET /v1/events through nginx on a TLS socket, read as it comes."""

    def __init__(self, cluster, token, since, query_token):
        raw = socket.create_connection(("127.0.0.1", cluster.nginx.port), timeout=30)
        self.sock = cluster.tls.wrap_socket(raw, server_hostname="127.0.0.1")
        path = "/v1/events?since=%d" % since
        lines = ["GET %s HTTP/1.1" % (path + ("&access_token=" + token if query_token else "")),
                 "Host: 127.0.0.1:%d" % cluster.nginx.port, "Accept: text/event-stream"]
        if not query_token:
            lines.append("Authorization: Bearer " + token)
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.sock.settimeout(0.2)
        self.received = b""

    def read_some(self):
        try:
            data = self.sock.recv(65536)
            assert data, "nginx closed the event stream: %r" % self.received
            self.received += data
        except (socket.timeout, ssl.SSLWantReadError):
            pass
        return self.received

    def close(self):
        self.sock.close()


def state(api):
    """Every live record a client has, as pull tells it: (db, store, key
    JSON) -> value."""
    out, since = {}, 0
    while True:
        page = api.pull(since)
        for c in page["changes"]:
            k = (c["db"], c["store"], json.dumps(c["key"], sort_keys=True))
            if c["op"] == "delete":
                out.pop(k, None)
            else:
                out[k] = c["value"]
        since = page["checkpoint"]
        if not page["more"]:
            return out


def test_moving_a_client_to_another_node(cluster):
    """The steps of README's "Moving a client to another node" (conftest's
    move_client): a new client and token on the new node, the client's
    change lines of each store imported there."""
    old, new = cluster.nodes["node-a"], cluster.nodes["node-b"]
    old_api = cluster.api(old.add_client("alice"))
    old.add_client("bob")  # stays where it is
    old_api.schema("shop", [{"name": "orders", "keyPath": None},
                            {"name": "notes", "keyPath": "id", "autoIncrement": True}])
    old_api.push([put("o%d" % k, k, {"k": k}) for k in range(20)])
    old_api.push([{"id": "n%d" % i, "db": "shop", "store": "notes", "op": "put",
                   "value": {"text": "note %d" % i}} for i in range(5)])
    old_api.push([{"id": "d%d" % k, "db": "shop", "store": "orders", "key": k,
                   "op": "delete"} for k in (3, 4)])
    old_api.push([put("o3again", 3, {"k": 3, "again": True})])
    with open(os.path.join(old.mnt, "alice", "shop", "orders", "from-vim.json"), "w") as f:
        f.write('{"edited": "on the mount"}\n')
    before = state(old_api)
    assert len(before) == 19 + 5 + 1

    new_token = move_client(old, new, "alice")
    assert new_token.startswith("node-b.")
    new_api = cluster.api(new_token)
    assert state(new_api) == before
    # The mount of the new node has the same records with the same values.
    for store in ("orders", "notes"):
        a = os.path.join(old.mnt, "alice", "shop", store)
        b = os.path.join(new.mnt, "alice", "shop", store)
        assert sorted(os.listdir(a)) == sorted(os.listdir(b))
        for name in os.listdir(a):
            with open(os.path.join(a, name)) as fa, open(os.path.join(b, name)) as fb:
                assert json.load(fa) == json.load(fb), name
    assert fs_conftest.sh("getfattr --only-values -n user.idbmount.keypath %s" % os.path.join(
        new.mnt, "alice", "shop", "notes")).stdout == '"id"'
    # The new token writes on the new node; the old one still reaches the
    # old node's copy (there is no client delete: it is left in place).
    new_api.push([put("after-move", 100, {"k": 100})])
    # The key generator of an autoIncrement store goes on past the
    # imported keys: a new note overwrites none.
    r = new_api.push([{"id": "n-after", "db": "shop", "store": "notes", "op": "put",
                       "value": {"text": "after the move"}}])
    assert r[0]["status"] == "ok" and r[0]["key"] == 6, r
    assert state(new_api)[("shop", "notes", "1")] == before[("shop", "notes", "1")]
    assert os.path.exists(os.path.join(new.mnt, "alice", "shop", "orders", "100.json"))
    assert not os.path.exists(os.path.join(old.mnt, "alice", "shop", "orders", "100.json"))
    assert os.path.isdir(os.path.join(old.mnt, "bob"))
    assert not os.path.exists(os.path.join(new.mnt, "bob"))
