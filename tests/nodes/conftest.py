"""Fixtures for several idbmount nodes behind nginx: three real daemons
(each its own data directory, mount and HTTP port on loopback), their
sinks into one shared spool directory and one shared WebHDFS test peer,
and Debian's nginx in front, ending TLS with a certificate openssl makes
here, run with mount-helpers/idbmount-nodes.nginx.conf (its addresses,
ports and paths replaced) in a prefix of its own, never as the system
service.

Clients are made on their node with `idbmountctl client add NAME --node
NODE`; `Cluster.api(token)` speaks to nginx with http.client over TLS,
trusting the test certificate.
"""
import http.client
import importlib.util
import json
import os
import shlex
import shutil
import socket
import ssl
import subprocess
import sys
import time

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))


def _load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


fs_conftest = _load("fs_conftest", os.path.join(HERE, "..", "fs", "conftest.py"))
sys.path.insert(0, os.path.join(HERE, "..", "sinks"))
from peers import WebHdfsPeer  # noqa: E402  (tests/sinks' WebHDFS peer)

sync_conftest = _load("sync_conftest", os.path.join(HERE, "..", "sync", "conftest.py"))

Api = sync_conftest.Api
wait_for = fs_conftest.wait_for
SOURCE_DIR = os.environ.get("IDBMOUNT_SOURCE_DIR",
                            os.path.abspath(os.path.join(HERE, "..", "..")))
NGINX_CONF = os.path.join(SOURCE_DIR, "mount-helpers", "idbmount-nodes.nginx.conf")
NODES = ("node-a", "node-b", "node-c")


def nginx_binary():
    """Debian's nginx, installed by install-deps.sh --test when missing."""
    path = shutil.which("nginx") or "/usr/sbin/nginx"
    if not os.path.exists(path):
        subprocess.run(["bash", os.path.join(SOURCE_DIR, "mount-helpers", "install-deps.sh"),
                        "--test"], check=False, stdin=subprocess.DEVNULL)
        path = shutil.which("nginx") or "/usr/sbin/nginx"
    assert os.path.exists(path), "nginx is missing: run mount-helpers/install-deps.sh --test"
    return path


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def sinks_config(spool, hdfs_url):
    """The same two sinks on every node: one spool directory, one HDFS path."""
    return ("[sink spool]\ntype = dir\npath = %s\nmax_age = 50ms\n\n"
            "[sink hdfs]\ntype = webhdfs\nurl = %s\npath = /data/idb\nuser = etl\n"
            "max_age = 50ms\n" % (spool, hdfs_url))


class Node:
    """One daemon: its data directory, mount, config and HTTP port."""

    def __init__(self, root, name, config_text, daemon_args=()):
        self.name = name
        self.root = root / name
        os.makedirs(self.root)
        self.data = str(self.root / "data")
        self.mnt = str(self.root / "mnt")
        self.config = str(self.root / "idbmount.ini")
        with open(self.config, "w") as f:
            f.write(config_text)
        # --server-name: the Host clients send through nginx
        # (127.0.0.1:NGINX_PORT), as sync.example.com in production.
        self.daemon = fs_conftest.Daemon(self.data, self.mnt, args=[
            "--config", self.config, "--server-name", "127.0.0.1", *daemon_args])
        self.port = None

    def start(self):
        self.daemon.start()
        self.port = self.daemon.port()
        return self

    def ctl(self, *args, check=True, input=None):
        return fs_conftest.ctl(self.data, *args, check=check, input=input, timeout=300)

    def add_client(self, name):
        return self.ctl("client", "add", name, "--node", self.name).stdout.strip()

    def status(self):
        return json.loads(self.ctl("status", "--json").stdout)

    def healthz(self):
        """The daemon's own /healthz, not through nginx: its epoch."""
        c = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            c.request("GET", "/healthz")
            return json.loads(c.getresponse().read())
        finally:
            c.close()

    def log(self):
        out = self.ctl("log", "--since", "0").stdout
        return [json.loads(line) for line in out.splitlines() if line]

    def wait_caught_up(self, timeout=120):
        def done():
            st = self.status()
            return all(s["cursor"] >= st["last_seq"] for s in st["sinks"]) and \
                len(st["sinks"]) == 2
        wait_for("%s's sinks to deliver everything" % self.name, done, timeout=timeout)


def move_client(old, new, name):
    """Moves client `name` from node `old` to node `new` with the steps of
    README's "Moving a client to another node", as shell commands:
    1. a new client and token on the new node; 2. the stores with an
    inline keyPath made there as they are (import makes the others);
    3. per store, the client's change lines from the old node's log
    imported on the new one (later lines win, deletes of absent keys are
    harmless). Returns the new token; the old client stays (there is no
    client delete)."""
    token = new.add_client(name)
    ctl = fs_conftest.IDBMOUNTCTL
    for db in old.ctl("ls", name).stdout.split():
        for store in old.ctl("ls", "%s/%s" % (name, db)).stdout.split():
            d = shlex.quote(os.path.join(old.mnt, name, db, store))
            getfattr = "getfattr --absolute-names --only-values -n user.idbmount."
            keypath = fs_conftest.sh(getfattr + "keypath " + d).stdout
            auto = fs_conftest.sh(getfattr + "autoincrement " + d).stdout
            path = "%s/%s/%s" % (name, db, store)
            if keypath != "null":
                new.ctl("mkstore", path, "--keypath", keypath,
                        *(["--autoincrement"] if auto == "true" else []))
            select = "select(.client == %s and .db == %s and .store == %s)" % (
                json.dumps(name), json.dumps(db), json.dumps(store))
            fs_conftest.sh("%s --data %s log --since 0 | jq -c %s | %s --data %s import %s -" % (
                ctl, shlex.quote(old.data), shlex.quote(select), ctl, shlex.quote(new.data),
                shlex.quote(path)))
    return token


class Nginx:
    """Debian's nginx with the repository's config, in a prefix of its own."""

    def __init__(self, root, nodes, cert, key):
        self.prefix = root / "nginx"
        os.makedirs(self.prefix / "logs")
        self.port = free_port()
        text = open(NGINX_CONF).read()
        replacements = [("listen 443 ssl http2;", "listen 127.0.0.1:%d ssl http2;" % self.port),
                        ("listen [::]:443 ssl http2;", ""),
                        ("/etc/ssl/idbmount/fullchain.pem", str(cert)),
                        ("/etc/ssl/idbmount/privkey.pem", str(key))]
        for i, node in enumerate(nodes):
            replacements.append(("server 127.0.0.1:%d;" % (8751 + i),
                                 "server 127.0.0.1:%d;" % node.port))
        for old, new in replacements:
            assert old in text, "%s no longer holds %r" % (NGINX_CONF, old)
            text = text.replace(old, new)
        with open(self.prefix / "idbmount.conf", "w") as f:
            f.write(text)
        # The main file, as /etc/nginx/nginx.conf is on Debian, with every
        # path in the prefix.
        with open(self.prefix / "nginx.conf", "w") as f:
            f.write("daemon off;\nmaster_process on;\nworker_processes 1;\n"
                    "pid %(p)s/nginx.pid;\nerror_log %(p)s/logs/error.log info;\n"
                    "events { worker_connections 1024; }\n"
                    "http {\n  access_log %(p)s/logs/access.log;\n"
                    "  client_body_temp_path %(p)s/client_body;\n"
                    "  proxy_temp_path %(p)s/proxy;\n  fastcgi_temp_path %(p)s/fastcgi;\n"
                    "  uwsgi_temp_path %(p)s/uwsgi;\n  scgi_temp_path %(p)s/scgi;\n"
                    "  include %(p)s/idbmount.conf;\n}\n" % {"p": self.prefix})
        self.binary = nginx_binary()
        self.proc = None

    def start(self):
        args = [self.binary, "-p", str(self.prefix), "-c", str(self.prefix / "nginx.conf"),
                "-e", str(self.prefix / "logs" / "error.log")]
        check = subprocess.run(args + ["-t"], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        self.stderr = open(self.prefix / "logs" / "stderr", "wb")
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=self.stderr,
                                     stderr=self.stderr)

        def listening():
            assert self.proc.poll() is None, "nginx exited: " + self.error_log()
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return True
            except OSError:
                return False
        wait_for("nginx to listen", listening)
        return self

    def error_log(self):
        with open(self.prefix / "logs" / "error.log", errors="replace") as f:
            return f.read()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()  # nginx's fast shutdown
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.stderr.close()


def make_certificate(directory):
    """A self-signed certificate for 127.0.0.1 (openssl), and its key."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    return cert, key


class Cluster:
    def __init__(self, root, daemon_args=()):
        self.root = root
        self.spool = root / "spool"
        os.makedirs(self.spool)
        self.hdfs_root = root / "hdfs"
        self.hdfs = WebHdfsPeer(self.hdfs_root)
        config = sinks_config(self.spool, self.hdfs.url)
        self.nodes = {name: Node(root, name, config, daemon_args) for name in NODES}
        self.cert, self.key = make_certificate(root)
        self.tls = ssl.create_default_context(cafile=str(self.cert))
        self.nginx = None

    def start(self):
        for node in self.nodes.values():
            node.start()
        self.nginx = Nginx(self.root, list(self.nodes.values()), self.cert, self.key).start()
        return self

    @property
    def url(self):
        return "https://127.0.0.1:%d" % self.nginx.port

    def api(self, token):
        """HTTP calls through nginx (TLS) with `token`."""
        return Api(self.nginx.port, token, self.tls)

    def stop(self):
        """Stops everything, then fails if a daemon did not exit cleanly."""
        if self.nginx:
            self.nginx.stop()
        failures = []
        for node in self.nodes.values():
            try:
                fs_conftest.stop_cleanly(node.daemon)
            except AssertionError as e:
                failures.append(str(e))
        self.hdfs.close()
        assert not failures, "\n".join(failures)


@pytest.fixture
def start_cluster(tmp_path):
    """Returns start(daemon_args=()): a started Cluster whose daemons get
    these extra arguments."""
    assert os.path.exists("/dev/fuse"), \
        "/dev/fuse is missing: run mount-helpers/install-deps.sh --test"
    made = []

    def start(daemon_args=()):
        c = Cluster(tmp_path, daemon_args)
        made.append(c)
        return c.start()

    yield start
    for c in made:
        c.stop()


@pytest.fixture
def cluster(start_cluster):
    return start_cluster()
