"""The server around the protocol: timeouts, TLS, CORS, daemon options."""
import json
import os
import socket
import ssl
import subprocess

import pytest

from conftest import Daemon, assert_error, fs_conftest, put


def wait_closed(sock):
    """Reads until the server closes the connection; returns what came."""
    got = b""
    while True:
        data = sock.recv(65536)  # the socket's own timeout is the deadline
        if not data:
            return got
        got += data


def test_a_client_stalled_in_its_headers_is_timed_out(start_sync):
    sync = start_sync(["--http-timeout", "2"])
    s = sync.raw(timeout=60)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % sync.port)  # never finished
    assert wait_closed(s) == b""
    s.close()
    assert sync.anonymous.get("/healthz").status == 200


def test_a_client_stalled_in_its_body_is_timed_out(start_sync):
    sync = start_sync(["--http-timeout", "2"])
    sync.alice.schema("shop", [{"name": "orders"}])
    s = sync.raw(timeout=60)
    s.sendall(("POST /v1/push HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAuthorization: Bearer %s\r\n"
               "Content-Length: 1000\r\n\r\n{\"mutations\": [" %
               (sync.port, sync.tokens["alice"])).encode())
    got = wait_closed(s)
    assert b"200 OK" not in got
    s.close()
    assert os.listdir(sync.path("alice", "shop", "orders")) == []


def test_an_idle_keepalive_connection_is_closed(start_sync):
    sync = start_sync(["--http-timeout", "2"])
    s = sync.raw(timeout=60)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % sync.port)
    got = wait_closed(s)
    assert got.startswith(b"HTTP/1.1 200 OK")
    s.close()


def make_cert(tmp_path):
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
                    "-out", str(cert), "-days", "2", "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True)
    return str(cert), str(key)


def test_tls_with_a_self_signed_certificate(start_sync, tmp_path):
    cert, key = make_cert(tmp_path)
    ctx = ssl.create_default_context(cafile=cert)
    sync = start_sync(["--tls-cert", cert, "--tls-key", key], tls_context=ctx)
    assert "serving https://" in sync.daemon.stderr()
    r = sync.anonymous.get("/healthz")
    assert r.status == 200 and r.json()["status"] == "ok"
    sync.alice.schema("shop", [{"name": "orders"}])
    [res] = sync.alice.push([put("t1", "shop", "orders", "secure", {"tls": True})])
    assert res["status"] == "ok"
    assert os.path.exists(sync.path("alice", "shop", "orders", "secure.json"))
    # A client that does not trust the certificate is refused by TLS itself.
    strict = ssl.create_default_context()
    with pytest.raises(ssl.SSLError):
        with socket.create_connection(("127.0.0.1", sync.port), timeout=30) as raw:
            strict.wrap_socket(raw, server_hostname="127.0.0.1")
    # Plain HTTP on the TLS port gets no HTTP answer.
    s = sync.raw(timeout=30)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n" % sync.port)
    try:
        got = wait_closed(s)
    except ConnectionResetError:
        got = b""
    assert not got.startswith(b"HTTP/1.1 200")
    s.close()


def test_tls_cert_without_key_is_refused_before_mounting(tmp_path):
    cert, _ = make_cert(tmp_path)
    d = Daemon(tmp_path / "data", tmp_path / "mnt", args=["--tls-cert", cert])
    with pytest.raises(RuntimeError, match="--tls-cert and --tls-key go together"):
        d.start()
    assert not fs_conftest.is_mounted(str(tmp_path / "mnt"))


def test_missing_tls_key_file_is_refused_before_mounting(tmp_path):
    cert, _ = make_cert(tmp_path)
    d = Daemon(tmp_path / "data", tmp_path / "mnt",
               args=["--tls-cert", cert, "--tls-key", str(tmp_path / "nope.pem")])
    with pytest.raises(RuntimeError, match="nope.pem: No such file"):
        d.start()
    assert not fs_conftest.is_mounted(str(tmp_path / "mnt"))


@pytest.mark.parametrize("listen,message", [
    ("localhost:8750", "not an IPv4 address"),
    ("127.0.0.1", "want ADDR:PORT"),
    ("127.0.0.1:99999", "the port is 0 to 65535"),
    ("[::1:8750", "an IPv6 address is written"),
])
def test_bad_listen_addresses_are_refused(tmp_path, listen, message):
    d = Daemon(tmp_path / "data", tmp_path / "mnt", args=["--listen", listen])
    with pytest.raises(RuntimeError, match=message):
        d.start()


def test_a_busy_port_is_refused_before_mounting(tmp_path):
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    d = Daemon(tmp_path / "data", tmp_path / "mnt", args=["--listen", "127.0.0.1:%d" % port])
    with pytest.raises(RuntimeError, match="Address already in use"):
        d.start()
    assert not fs_conftest.is_mounted(str(tmp_path / "mnt"))
    busy.close()


def test_listen_none_serves_the_mount_without_http(tmp_path):
    d = Daemon(tmp_path / "data", tmp_path / "mnt", args=["--listen", "none"])
    d.start()
    try:
        assert "serving" not in d.stderr()
        assert os.listdir(str(tmp_path / "mnt")) == []
    finally:
        assert d.stop() == 0


def test_ipv6_loopback(tmp_path):
    if not socket.has_ipv6:
        pytest.fail("this machine has no IPv6 stack")
    d = Daemon(tmp_path / "data", tmp_path / "mnt", args=["--listen", "[::1]:0"])
    try:
        d.start()
    except RuntimeError as e:
        if "Cannot assign requested address" in str(e) or "not available" in str(e):
            pytest.fail("::1 is not configured here: %s" % e)
        raise
    try:
        import http.client
        c = http.client.HTTPConnection("::1", d.port(), timeout=30)
        c.request("GET", "/healthz")
        assert c.getresponse().status == 200
        c.close()
        # The log names a URL that can be opened: the port picked for 0.
        assert "serving http://[::1]:%d (port %d)" % (d.port(), d.port()) in d.stderr()
    finally:
        assert d.stop() == 0


# ---- CORS ---------------------------------------------------------------

APP = "https://app.example.com"


def test_cors_preflight_from_an_allowed_origin(start_sync):
    sync = start_sync(["--allow-origin", APP + ",http://other.test:8080"])
    r = sync.anonymous.request("OPTIONS", "/v1/push", headers={
        "Origin": APP, "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type"})
    assert r.status == 204, r
    assert r.header("access-control-allow-origin") == APP
    assert "POST" in r.header("access-control-allow-methods")
    allowed = r.header("access-control-allow-headers").lower()
    assert "authorization" in allowed and "content-type" in allowed
    assert r.header("access-control-max-age") == "600"
    assert r.header("vary") == "Origin"


def test_cors_request_from_an_allowed_origin_gets_the_header(start_sync):
    sync = start_sync(["--allow-origin", APP])
    r = sync.alice.get("/v1/pull?since=0", headers={"Origin": APP})
    assert r.status == 200
    assert r.header("access-control-allow-origin") == APP


def test_cors_preflight_from_another_origin_is_403(start_sync):
    sync = start_sync(["--allow-origin", APP])
    r = sync.anonymous.request("OPTIONS", "/v1/push", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "POST"})
    assert_error(r, 403, "forbidden_origin")
    assert r.header("access-control-allow-origin") is None


def test_by_default_only_the_daemons_own_origin_may_call(sync):
    r = sync.alice.get("/v1/pull?since=0", headers={"Origin": APP})
    assert_error(r, 403, "forbidden_origin")
    own = "http://127.0.0.1:%d" % sync.port
    r = sync.alice.get("/v1/pull?since=0", headers={"Origin": own})
    assert r.status == 200
    assert r.header("access-control-allow-origin") is None


def test_allow_origin_star_allows_any(start_sync):
    sync = start_sync(["--allow-origin", "*"])
    r = sync.alice.get("/v1/pull?since=0", headers={"Origin": "https://any.example"})
    assert r.status == 200
    assert r.header("access-control-allow-origin") == "https://any.example"


def test_allow_origin_with_a_path_is_refused(tmp_path):
    d = Daemon(tmp_path / "data", tmp_path / "mnt", args=["--allow-origin", APP + "/"])
    with pytest.raises(RuntimeError, match="no path"):
        d.start()


# ---- the Host header -------------------------------------------------------


def raw_get(port, host, path="/healthz", method="GET", headers=(), connect="127.0.0.1",
            family=socket.AF_INET):
    """One request with exactly this Host (None: no Host header) on a plain
    socket; returns (status, headers, body)."""
    lines = ["%s %s HTTP/1.1" % (method, path)]
    if host is not None:
        lines.append("Host: " + host)
    lines += ["%s: %s" % h for h in headers]
    lines.append("Connection: close")
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.settimeout(30)
        s.connect((connect, port))
        s.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        got = wait_closed(s)
    head, _, body = got.partition(b"\r\n\r\n")
    head = head.decode("latin-1").split("\r\n")
    fields = {k.lower(): v.strip() for k, _, v in (l.partition(":") for l in head[1:])}
    return int(head[0].split()[1]), fields, body


def assert_misdirected(answer):
    status, fields, body = answer
    assert status == 421, (status, body)
    assert fields["content-type"] == "application/json"
    doc = json.loads(body)
    assert doc["error"] == "misdirected_request" and "--server-name" in doc["detail"], doc


def test_a_host_that_does_not_name_the_daemon_is_421(sync):
    """A DNS-rebinding page (rebind.example now resolving to 127.0.0.1) sends
    its own name as Host, and as Origin: neither /healthz, /metrics nor a
    preflight answers it."""
    port = sync.port
    for host in ("rebind.example:%d" % port, "rebind.example", "localhost.rebind.example:%d" % port,
                 "127.0.0.1:%d" % (port + 1), "127.0.0.1", "127.0.0.2:%d" % port,
                 "[::1]:%d" % port, "127.0.0.1:%d:%d" % (port, port), "127.0.0.1:", "",
                 "127.0.0.1:%d/x" % port):
        for path in ("/healthz", "/metrics", "/", "/v1/pull?since=0"):
            assert_misdirected(raw_get(port, host, path, headers=[
                ("Origin", "http://" + host),
                ("Authorization", "Bearer " + sync.tokens["alice"])]))
        assert_misdirected(raw_get(port, host, "/v1/push", method="OPTIONS", headers=[
            ("Origin", "http://" + host), ("Access-Control-Request-Method", "POST")]))
    status, _, body = raw_get(port, None)
    assert status == 400, body


def test_an_error_body_is_utf8_json_whatever_the_request_holds(sync):
    """A message quotes what the request said (its Host, a mutation's id,
    cut to so many bytes); the body stays UTF-8 JSON, with U+FFFD for the
    bytes that are not UTF-8, as a browser would show them."""
    with socket.create_connection(("127.0.0.1", sync.port), timeout=30) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: caf\xe9.example\r\n"
                  b"Connection: close\r\n\r\n")
        head, _, body = wait_closed(s).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 421 "), head
    doc = json.loads(body)  # bytes: decoded as UTF-8, strictly
    assert "caf\ufffd.example" in doc["detail"], doc
    # "mutation 0 (id %.64s)" cuts this id inside its 32nd "é".
    r = sync.alice.post("/v1/push", {"mutations": [
        {"id": "a" + "\u00e9" * 40, "db": "shop", "store": "orders", "op": "move"}]})
    assert r.status == 400, r
    doc = json.loads(r.body)
    assert doc["detail"].startswith("mutation 0 (id a" + "\u00e9" * 31 + "\ufffd)"), doc


def test_the_listen_address_and_localhost_are_served(sync):
    port = sync.port
    for host in ("127.0.0.1:%d" % port, "localhost:%d" % port, "LocalHost:%d" % port,
                 "localhost.:%d" % port):
        status, _, body = raw_get(port, host, headers=[("Origin", "http://" + host)])
        assert status == 200, (host, body)
    # The daemon's own page and its calls, as a browser makes them.
    r = sync.alice.get("/v1/pull?since=0", headers={"Origin": "http://127.0.0.1:%d" % port})
    assert r.status == 200, r


def test_server_names_are_served_on_any_port(start_sync):
    """Behind a proxy the Host is the public name (nginx with
    proxy_set_header Host $host): --server-name and -o server_name= list
    the names; a page of that name is the daemon's own origin, http or
    https (a proxy may end TLS)."""
    sync = start_sync(["--server-name", "app.example.com, Other.Example"])
    port = sync.port
    for host in ("app.example.com", "app.example.com:443", "APP.example.com:%d" % port,
                 "other.example", "127.0.0.1:%d" % port):
        status, _, body = raw_get(port, host)
        assert status == 200, (host, body)
    for origin in ("https://app.example.com", "http://app.example.com"):
        status, fields, body = raw_get(port, "app.example.com", "/v1/pull?since=0", headers=[
            ("Origin", origin), ("Authorization", "Bearer " + sync.tokens["alice"])])
        assert status == 200, (origin, body)
        assert "access-control-allow-origin" not in fields
    status, _, _ = raw_get(port, "app.example.com", "/v1/pull?since=0", headers=[
        ("Origin", "https://other.example"), ("Authorization", "Bearer " + sync.tokens["alice"])])
    assert status == 403  # another name of the daemon is another origin
    assert_misdirected(raw_get(port, "evil.example.com"))
    assert_misdirected(raw_get(port, "example.com"))


def test_server_name_as_a_mount_option(tmp_path):
    d = Daemon(tmp_path / "data", tmp_path / "mnt",
               args=["-o", "server_name=a.example,server_name=b.example"])
    d.start()
    try:
        port = d.port()
        assert raw_get(port, "a.example")[0] == 200
        assert raw_get(port, "b.example:8443")[0] == 200
        assert_misdirected(raw_get(port, "c.example"))
    finally:
        assert d.stop() == 0


@pytest.mark.parametrize("names", ["http://app.example.com", "app.example.com/x", "a b",
                                   "app.example.com:443", ",", "[::1]"])
def test_bad_server_names_are_refused(tmp_path, names):
    d = Daemon(tmp_path / "data", tmp_path / "mnt", args=["--server-name", names])
    with pytest.raises(RuntimeError, match="--server-name .*want host names"):
        d.start()


def test_a_wildcard_listen_serves_the_address_each_connection_came_to(tmp_path):
    d = Daemon(tmp_path / "data", tmp_path / "mnt", args=["--listen", "0.0.0.0:0"])
    d.start()
    try:
        port = d.port()
        for connect in ("127.0.0.1", "127.0.0.2"):
            for host in (connect, "localhost"):
                status, _, body = raw_get(port, "%s:%d" % (host, port), connect=connect)
                assert status == 200, (connect, host, body)
        assert_misdirected(raw_get(port, "127.0.0.2:%d" % port, connect="127.0.0.1"))
        assert_misdirected(raw_get(port, "0.0.0.0:%d" % port))
    finally:
        assert d.stop() == 0
    d = Daemon(tmp_path / "data", tmp_path / "mnt", args=["--listen", "[::]:0"])
    d.start()
    try:
        port = d.port()
        status, _, body = raw_get(port, "[::1]:%d" % port, connect="::1", family=socket.AF_INET6)
        assert status == 200, body
        status, _, body = raw_get(port, "127.0.0.1:%d" % port)  # IPv4 on the IPv6 socket
        assert status == 200, body
        assert_misdirected(raw_get(port, "[::2]:%d" % port, connect="::1", family=socket.AF_INET6))
    finally:
        assert d.stop() == 0
