"""The server around the protocol: timeouts, TLS, CORS, daemon options."""
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
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
    assert wait_closed(s) == b""
    s.close()
    assert sync.anonymous.get("/healthz").status == 200


def test_a_client_stalled_in_its_body_is_timed_out(start_sync):
    sync = start_sync(["--http-timeout", "2"])
    sync.alice.schema("shop", [{"name": "orders"}])
    s = sync.raw(timeout=60)
    s.sendall(("POST /v1/push HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\n"
               "Content-Length: 1000\r\n\r\n{\"mutations\": [" % sync.tokens["alice"]).encode())
    got = wait_closed(s)
    assert b"200 OK" not in got
    s.close()
    assert os.listdir(sync.path("alice", "shop", "orders")) == []


def test_an_idle_keepalive_connection_is_closed(start_sync):
    sync = start_sync(["--http-timeout", "2"])
    s = sync.raw(timeout=60)
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
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
    s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
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
