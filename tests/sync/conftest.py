"""Fixtures for the sync endpoint tests: a real idbmount daemon on a real FUSE
mount, spoken to over real HTTP on loopback (http.client, ssl).

The daemon and mount fixtures are tests/fs's (loaded from its conftest.py,
not copied). `sync` gives a daemon with two clients, alice and bob, their
tokens, and an `Api` per client; `start_sync(args)` starts one with extra
daemon arguments (TLS, CORS, limits).
"""
import http.client
import importlib.util
import json
import os
import socket
import ssl

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location(
    "fs_conftest", os.path.join(HERE, "..", "fs", "conftest.py"))
fs_conftest = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(fs_conftest)

Idb = fs_conftest.Idb
Daemon = fs_conftest.Daemon
sh = fs_conftest.sh
wait_for = fs_conftest.wait_for
SOURCE_DIR = os.environ.get("IDBMOUNT_SOURCE_DIR",
                            os.path.abspath(os.path.join(HERE, "..", "..")))


class Reply:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.body = body

    def json(self):
        return json.loads(self.body)

    def header(self, name):
        return self.headers.get(name)

    def __repr__(self):
        return "<%d %r>" % (self.status, self.body[:300])


class Api:
    """HTTP calls with one token (None: no Authorization header)."""

    def __init__(self, port, token, tls_context=None):
        self.port = port
        self.token = token
        self.tls_context = tls_context

    def connection(self, timeout=60):
        if self.tls_context:
            return http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=self.tls_context)
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)

    def request(self, method, path, body=None, headers=None, token="default"):
        token = self.token if token == "default" else token
        h = dict(headers or {})
        if token is not None:
            h.setdefault("Authorization", "Bearer " + token)
        if body is not None and not isinstance(body, (bytes, str)):
            body = json.dumps(body)
            h.setdefault("Content-Type", "application/json")
        c = self.connection()
        try:
            c.request(method, path, body=body, headers=h)
            r = c.getresponse()
            return Reply(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
        finally:
            c.close()

    def get(self, path, **kw):
        return self.request("GET", path, **kw)

    def post(self, path, body, **kw):
        return self.request("POST", path, body=body, **kw)

    def schema(self, db, stores, version=1):
        r = self.post("/v1/schema", {"db": db, "version": version, "stores": stores})
        assert r.status == 200, r
        return r.json()

    def push(self, mutations):
        r = self.post("/v1/push", {"mutations": mutations})
        assert r.status == 200, r
        return r.json()["results"]

    def pull(self, since=0, limit=None):
        q = "/v1/pull?since=%d" % since
        if limit is not None:
            q += "&limit=%d" % limit
        r = self.get(q)
        assert r.status == 200, r
        return r.json()


def put(mid, db, store, key, value, base="absent"):
    m = {"id": mid, "db": db, "store": store, "key": key, "op": "put", "value": value}
    if base != "absent":
        m["base"] = base
    return m


def delete(mid, db, store, key, base="absent"):
    m = {"id": mid, "db": db, "store": store, "key": key, "op": "delete"}
    if base != "absent":
        m["base"] = base
    return m


def assert_error(reply, status, error=None):
    """A 4xx/5xx with the JSON {error, detail} body src/DESIGN.md ("Errors")
    promises."""
    assert reply.status == status, reply
    assert reply.header("content-type") == "application/json", reply.headers
    body = reply.json()
    assert set(body) == {"error", "detail"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert isinstance(body["detail"], str) and body["detail"]
    if error:
        assert body["error"] == error, body
    return body


class Sync(Idb):
    def __init__(self, tmp_path, args=()):
        super().__init__(tmp_path)
        self.daemon = Daemon(self.data, self.mnt, args=args)
        self.tls_context = None
        self.tokens = {}

    def start(self):
        self.daemon.start()
        self.port = self.daemon.port()
        self.alice = self.api("alice")
        self.bob = self.api("bob")
        self.anonymous = Api(self.port, None, self.tls_context)
        return self

    def add_client(self, name):
        self.tokens[name] = self.ctl("client", "add", name).stdout.strip()
        return self.tokens[name]

    def api(self, name):
        return Api(self.port, self.tokens[name], self.tls_context)

    def raw(self, timeout=60):
        """A plain socket to the daemon's port."""
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        return s


@pytest.fixture
def start_sync(tmp_path):
    """Returns start(args=(), tls=False): a started Sync with alice and bob."""
    made = []

    def start(args=(), tls_context=None):
        s = Sync(tmp_path, args)
        s.tls_context = tls_context
        s.add_client("alice")
        s.add_client("bob")
        s.start()
        made.append(s)
        return s

    yield start
    for s in made:
        fs_conftest.stop_cleanly(s.daemon)


@pytest.fixture
def sync(start_sync):
    return start_sync()
