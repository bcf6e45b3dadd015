"""Test peers for the http and webhdfs sinks, strict like the real servers.

FlumeHttpPeer: Flume's HTTP source with its JSONHandler. The body must be a
  UTF-8 JSON array of {"headers": {string: string}, "body": string} objects
  and nothing else (400 otherwise, as Flume answers a HandlerException).
  It answers 200 once the events are "committed" (kept in `events`), or on
  demand 503 (channel full), another status, or drops the connection
  without an answer. In jsonl mode it takes application/x-ndjson lines,
  like NiFi ListenHTTP. Beyond Flume, it holds our sink to its word on
  idempotency: every POST carries X-Idbmount-Batch, -First-Seq, -Last-Seq
  and -Count that agree with the body, and a batch sent again (a retry, or
  the redo after a crash) has the same body. With `dedupe = True` it is a
  receiver that drops a batch it already committed (answering 200), as the
  README tells receivers to do; `duplicates` counts the repeats either way.

WebHdfsPeer: a NameNode and a DataNode on two ports keeping files in a
  local directory. CREATE at the NameNode answers 307 to the DataNode (or
  200 {"Location"} with noredirect=true); the DataNode wants Content-Type
  application/octet-stream and refuses an existing file unless
  overwrite=true (403 FileAlreadyExistsException); RENAME answers
  {"boolean":false} when the target exists, the source or the target's
  parent is missing; errors are {"RemoteException": ...}; user.name is
  required. `httpfs = True` makes it HttpFS: no redirect, data=true
  required on CREATE, overwrite defaults to true.
"""
import json
import os
import socket
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet
        pass

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def reply(self, status, obj=None, headers=()):
        data = b"" if obj is None else json.dumps(obj).encode()
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        if obj is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def drop(self):
        """Closes the connection without an answer."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass


class _Peer:
    def _serve(self, handler, port=0):
        server = _Server(("127.0.0.1", port), handler)
        server.peer = self
        t = threading.Thread(target=server.serve_forever, daemon=True)
        t.start()
        return server

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


# ---- Flume HTTP source ----------------------------------------------------

class _FlumeHandler(_Handler):
    def do_POST(self):
        peer = self.server.peer
        body = self.body()
        with peer.lock:
            peer.requests += 1
            action = peer.scripted.pop(0) if peer.scripted else None
        if action == "drop":
            return self.drop()
        if action == "hang":
            peer.released.wait(timeout=120)
            return self.drop()
        if action is not None and action not in ("commit-drop", "commit-hang"):
            return self.reply(action, {"error": "scripted"})
        error = peer.check(self.headers, body)
        if error:
            with peer.lock:
                peer.errors.append(error)
            return self.reply(400, {"error": error})
        # Committed, then the answer is lost (a crash or a cut connection
        # after the channel took the events): the sender must send again.
        if action == "commit-drop":
            return self.drop()
        if action == "commit-hang":
            peer.released.wait(timeout=120)
            return self.drop()
        self.reply(200)

    def do_GET(self):
        self.reply(405)


class FlumeHttpPeer(_Peer):
    def __init__(self, mode="flume-json", path="/", port=0):
        self.mode = mode
        self.path = path
        self.lock = threading.Lock()
        self.events = []      # body strings, in the order committed
        self.headers = []     # each event's headers (flume-json)
        self.posts = []       # (request headers dict, number of events)
        self.errors = []
        self.requests = 0
        # statuses, "drop" or "hang" (no answer, nothing committed),
        # "commit-drop" or "commit-hang" (committed, no answer) for the next
        # requests
        self.scripted = []
        self.dedupe = False
        self.batches = {}     # X-Idbmount-Batch -> body, of every batch committed
        self.duplicates = 0   # batches received again after a commit
        self.released = threading.Event()  # ends the "hang"s
        self.server = self._serve(_FlumeHandler, port)
        self.url = "http://127.0.0.1:%d%s" % (self.server.server_address[1], path)

    def answer_next(self, status, count=1):
        with self.lock:
            self.scripted += [status] * count

    def hang_next(self, count=1):
        """Takes the request and never answers (until close)."""
        with self.lock:
            self.scripted += ["hang"] * count

    def drop_next(self, count=1):
        with self.lock:
            self.scripted += ["drop"] * count

    def check_batch(self, headers, body, lines):
        """The batch headers against the body's change lines; a repeat of
        a committed batch must be byte for byte the same. Returns an error,
        or None, and whether the batch is a repeat."""
        batch = headers.get("X-Idbmount-Batch", "")
        if not batch:
            return "no X-Idbmount-Batch header (receivers dedupe on it)", False
        try:
            first = int(headers.get("X-Idbmount-First-Seq", ""))
            last = int(headers.get("X-Idbmount-Last-Seq", ""))
            count = int(headers.get("X-Idbmount-Count", ""))
        except ValueError:
            return "X-Idbmount-First-Seq, -Last-Seq or -Count missing or not a number", False
        if count != len(lines):
            return "X-Idbmount-Count %d, but %d events" % (count, len(lines)), False
        try:
            seqs = [json.loads(line)["seq"] for line in lines]
        except (ValueError, KeyError, TypeError):
            return "an event body is not a change line with a seq", False
        if not seqs or seqs[0] != first or seqs[-1] != last:
            return "X-Idbmount-First-Seq/-Last-Seq %d-%d, but the lines hold %s" % (
                first, last, seqs[:1] + seqs[-1:]), False
        with self.lock:
            before = self.batches.get(batch)
        if before is not None and before != body:
            return "X-Idbmount-Batch %s was sent again with another body" % batch, False
        return None, before is not None

    def commit(self, headers, body, lines, event_headers=None):
        """Keeps the events (unless a deduping receiver has them already)."""
        error, repeat = self.check_batch(headers, body, lines)
        if error:
            return error
        with self.lock:
            self.batches[headers["X-Idbmount-Batch"]] = body
            if repeat:
                self.duplicates += 1
                if self.dedupe:
                    return None
            self.events += lines
            if event_headers is not None:
                self.headers += event_headers
            self.posts.append((dict(headers), len(lines)))
        return None

    def check(self, headers, body):
        ctype = headers.get("Content-Type", "")
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return "body is not UTF-8"
        if self.mode == "jsonl":
            if not ctype.startswith("application/x-ndjson"):
                return "Content-Type %r, expected application/x-ndjson" % ctype
            if not text.endswith("\n") or "\n\n" in text:
                return "jsonl body without a final newline or with a blank line"
            lines = text.split("\n")[:-1]
            for line in lines:
                json.loads(line)
            return self.commit(headers, body, lines)
        if not ctype.startswith("application/json"):
            return "Content-Type %r, expected application/json" % ctype
        try:
            doc = json.loads(text)
        except ValueError as e:
            return "malformed JSON: %s" % e
        if not isinstance(doc, list):
            return "body is not a JSON array"
        for ev in doc:
            if not isinstance(ev, dict) or set(ev) != {"headers", "body"}:
                return "an event is not {headers, body}: %r" % (ev,)
            if not isinstance(ev["body"], str):
                return "an event body is not a string"
            if not isinstance(ev["headers"], dict) or not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in ev["headers"].items()):
                return "event headers are not string to string"
        return self.commit(headers, body, [ev["body"] for ev in doc],
                           [ev["headers"] for ev in doc])

    def close(self):
        self.released.set()
        self.server.shutdown()
        self.server.server_close()


# ---- WebHDFS --------------------------------------------------------------

def _remote(exception, message):
    return {"RemoteException": {"exception": exception,
                                "javaClassName": "org.apache.hadoop.%s" % exception,
                                "message": message}}


class _HdfsHandler(_Handler):
    def parse(self):
        u = urllib.parse.urlsplit(self.path)
        q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
        if not u.path.startswith("/webhdfs/v1/"):
            return None, None, q
        hdfs = urllib.parse.unquote(u.path[len("/webhdfs/v1"):])
        return hdfs, q.get("op", "").upper(), q

    def local(self, hdfs):
        peer = self.server.peer
        path = os.path.normpath(os.path.join(peer.root, hdfs.lstrip("/")))
        assert path.startswith(peer.root)
        return path

    def common(self, method):
        peer = self.server.peer
        hdfs, op, q = self.parse()
        body = self.body()
        with peer.lock:
            peer.log.append((method, op, hdfs, q))
            hang = peer.hang.get(op)
            scripted = peer.scripted.get(op)
            if scripted:
                action = scripted.pop(0)
            else:
                action = None
        if hang is not None:
            hang.wait(timeout=120)
        if action == "drop":
            self.drop()
            return None
        if action is not None:
            self.reply(action, _remote("IOException", "scripted failure"))
            return None
        if hdfs is None:
            self.reply(404, _remote("IllegalArgumentException", "not a WebHDFS path"))
            return None
        if "user.name" not in q:
            self.reply(401, _remote("SecurityException", "no user.name (simple auth)"))
            return None
        return hdfs, op, q, body


class _NameNodeHandler(_HdfsHandler):
    def do_PUT(self):
        got = self.common("PUT")
        if not got:
            return
        hdfs, op, q, body = got
        peer = self.server.peer
        path = self.local(hdfs)
        if op == "MKDIRS":
            if os.path.isfile(path):
                return self.reply(403, _remote("FileAlreadyExistsException", hdfs + " is a file"))
            os.makedirs(path, exist_ok=True)
            return self.reply(200, {"boolean": True})
        if op == "CREATE":
            if peer.httpfs:
                if q.get("data") != "true":
                    return self.reply(400, _remote("IllegalArgumentException",
                                                   "HttpFS: CREATE needs data=true"))
                return peer.write_file(self, hdfs, path, q, body, default_overwrite="true")
            if body:
                return self.reply(400, _remote("IllegalArgumentException",
                                               "data sent to the NameNode"))
            loc = "http://127.0.0.1:%d/webhdfs/v1%s?%s" % (
                peer.datanode_port, urllib.parse.quote(hdfs),
                urllib.parse.urlencode(dict(q, namenoderpcaddress="127.0.0.1:8020")))
            if q.get("noredirect") == "true":
                return self.reply(200, {"Location": loc})
            return self.reply(307, None, [("Location", loc)])
        if op == "RENAME":
            dest = q.get("destination", "")
            if not dest.startswith("/"):
                return self.reply(400, _remote("IllegalArgumentException", "bad destination"))
            target = self.local(dest)
            ok = (os.path.exists(path) and not os.path.exists(target)
                  and os.path.isdir(os.path.dirname(target)))
            if ok:
                os.rename(path, target)
            return self.reply(200, {"boolean": ok})
        return self.reply(400, _remote("IllegalArgumentException", "op %s not supported" % op))

    def do_GET(self):
        got = self.common("GET")
        if not got:
            return
        hdfs, op, q, body = got
        path = self.local(hdfs)
        if op == "GETFILESTATUS":
            if not os.path.exists(path):
                return self.reply(404, _remote("FileNotFoundException",
                                               "File does not exist: " + hdfs))
            st = os.stat(path)
            return self.reply(200, {"FileStatus": {
                "length": st.st_size, "type": "DIRECTORY" if os.path.isdir(path) else "FILE",
                "modificationTime": int(st.st_mtime * 1000), "pathSuffix": ""}})
        return self.reply(400, _remote("IllegalArgumentException", "op %s not supported" % op))


class _DataNodeHandler(_HdfsHandler):
    def do_PUT(self):
        got = self.common("PUT")
        if not got:
            return
        hdfs, op, q, body = got
        if op != "CREATE":
            return self.reply(400, _remote("IllegalArgumentException", "DataNode: only CREATE"))
        self.server.peer.write_file(self, hdfs, self.local(hdfs), q, body,
                                    default_overwrite="false")


class WebHdfsPeer(_Peer):
    def __init__(self, root, httpfs=False):
        self.root = os.path.realpath(str(root))
        self.httpfs = httpfs
        self.lock = threading.Lock()
        self.log = []
        self.scripted = {}   # op -> [status or "drop", ...]
        self.hang = {}       # op -> threading.Event to wait for
        self.datanode = self._serve(_DataNodeHandler)
        self.namenode = self._serve(_NameNodeHandler)
        self.port = self.namenode.server_address[1]
        self.datanode_port = self.datanode.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port

    def fail_next(self, op, status, count=1):
        with self.lock:
            self.scripted.setdefault(op, []).extend([status] * count)

    def write_file(self, handler, hdfs, path, q, body, default_overwrite):
        ctype = handler.headers.get("Content-Type", "")
        if ctype != "application/octet-stream":
            return handler.reply(400, _remote("IllegalArgumentException",
                                              "Content-Type %r, want application/octet-stream" % ctype))
        overwrite = q.get("overwrite", default_overwrite) == "true"
        if os.path.exists(path) and not overwrite:
            return handler.reply(403, _remote("FileAlreadyExistsException",
                                              "%s for client 127.0.0.1 already exists" % hdfs))
        if not os.path.isdir(os.path.dirname(path)):
            os.makedirs(os.path.dirname(path))
        with open(path, "wb") as f:
            f.write(body)
        handler.reply(201, None, [("Location", "hdfs://127.0.0.1:8020" + hdfs)])

    def ops(self, op):
        with self.lock:
            return [e for e in self.log if e[1] == op]

    def close(self):
        for ev in self.hang.values():
            ev.set()
        for s in (self.namenode, self.datanode):
            s.shutdown()
            s.server_close()
