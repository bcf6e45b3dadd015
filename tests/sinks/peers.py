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
  parent is missing; a name HDFS's DFSUtil.isValidName refuses (a part
  holding ':', "." or "..", "//") gets 400 InvalidPathException from
  MKDIRS, the DataNode's CREATE, RENAME's target and GETFILESTATUS;
  DELETE answers {"boolean":false} for a missing path and refuses a
  non-empty directory without recursive=true; LISTSTATUS lists a
  directory; errors are {"RemoteException": ...}, a missing path 404
  FileNotFoundException; user.name is required. Namespace operations
  happen one at a time. `httpfs = True` makes it HttpFS: no redirect,
  data=true required on CREATE, overwrite defaults to true. Scripts make
  it answer late (the operation done, the answer after the client's
  timeout), complete a write late, fail or drop a request.

HdfsConsumer: takes every file published into a WebHdfsPeer, some time
  after the RENAME, moving it into archive/ or deleting it (Spark's
  cleanSource=archive, NiFi GetHDFS), and notes a name published twice.
"""
import gzip
import json
import os
import shutil
import socket
import threading
import time
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


def hdfs_valid_name(path):
    """HDFS's DFSUtil.isValidName: an absolute path none of whose components
    is "." or ".." or holds ':', and no empty component but the first and
    the last ("//" inside). The NameNode answers anything else with
    InvalidPathException (MKDIRS, CREATE, RENAME's target, GETFILESTATUS)."""
    if not path.startswith("/"):
        return False
    parts = path.split("/")
    while parts and parts[-1] == "":  # Hadoop's StringUtils.split drops them
        parts.pop()
    for i, part in enumerate(parts):
        if part in (".", "..") or ":" in part:
            return False
        if part == "" and i != 0:
            return False
    return True


def _visible(hdfs_path):
    name = hdfs_path.rstrip("/").rsplit("/", 1)[-1]
    return not name.startswith((".", "_"))


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

    def reply(self, status, obj=None, headers=()):
        # A late answer goes to a client that gave up and closed.
        try:
            super().reply(status, obj, headers)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def invalid(self, hdfs):
        self.reply(400, _remote("InvalidPathException", "Invalid path name " + hdfs))

    def common(self, method, datanode=False):
        """Logs the request and plays what was scripted for it. Returns
        (hdfs path, op, query, body, timing) or None when answered."""
        peer = self.server.peer
        hdfs, op, q = self.parse()
        body = self.body()
        keys = [op]
        if datanode:
            keys.insert(0, "DATANODE")
        elif op == "RENAME" and _visible(q.get("destination", "")):
            keys.insert(0, "PUBLISH")
        with peer.lock:
            peer.log.append((method, op, hdfs, q))
            hang = next((peer.hang[k] for k in keys if k in peer.hang), None)
            action = None
            if peer.scripted_path.get((op, hdfs)):
                action = peer.scripted_path[(op, hdfs)].pop(0)
            else:
                for k in keys:
                    if peer.scripted.get(k):
                        action = peer.scripted[k].pop(0)
                        break
        if hang is not None:
            hang.wait(timeout=120)
        if action == "drop":
            self.drop()
            return None
        if isinstance(action, int):
            self.reply(action, _remote("IOException", "scripted failure"))
            return None
        if isinstance(action, tuple):
            status, exception, message = action
            self.reply(status, _remote(exception, message))
            return None
        if hdfs is None:
            self.reply(404, _remote("IllegalArgumentException", "not a WebHDFS path"))
            return None
        if "user.name" not in q:
            self.reply(401, _remote("SecurityException", "no user.name (simple auth)"))
            return None
        if action == "slow":
            # The operation itself happens after the client gave up.
            time.sleep(peer.late_s)
        return hdfs, op, q, body, action

    def answer(self, action, status, obj=None, headers=()):
        """Answers, after peer.late_s for a "late" action: the operation is
        done, its answer comes after the client's timeout."""
        if action == "late":
            time.sleep(self.server.peer.late_s)
        self.reply(status, obj, headers)


class _NameNodeHandler(_HdfsHandler):
    def do_PUT(self):
        got = self.common("PUT")
        if not got:
            return
        hdfs, op, q, body, action = got
        peer = self.server.peer
        path = self.local(hdfs)
        if op == "MKDIRS":
            if not hdfs_valid_name(hdfs):
                return self.invalid(hdfs)
            with peer.fs_lock:
                if os.path.isfile(path):
                    return self.answer(action, 403, _remote("FileAlreadyExistsException",
                                                            hdfs + " is a file"))
                os.makedirs(path, exist_ok=True)
            return self.answer(action, 200, {"boolean": True})
        if op == "CREATE":
            if peer.httpfs:
                if q.get("data") != "true":
                    return self.reply(400, _remote("IllegalArgumentException",
                                                   "HttpFS: CREATE needs data=true"))
                return peer.write_file(self, hdfs, path, q, body, "true", action)
            if body:
                return self.reply(400, _remote("IllegalArgumentException",
                                               "data sent to the NameNode"))
            # Like HDFS, the NameNode only picks a DataNode here; the name
            # is checked when the DataNode creates the file.
            loc = "http://127.0.0.1:%d/webhdfs/v1%s?%s" % (
                peer.datanode_port, urllib.parse.quote(hdfs),
                urllib.parse.urlencode(dict(q, namenoderpcaddress="127.0.0.1:8020")))
            if q.get("noredirect") == "true":
                return self.answer(action, 200, {"Location": loc})
            return self.answer(action, 307, None, [("Location", loc)])
        if op == "RENAME":
            dest = q.get("destination", "")
            if not dest.startswith("/"):
                return self.reply(400, _remote("IllegalArgumentException", "bad destination"))
            if not hdfs_valid_name(dest):
                return self.invalid(dest)
            target = self.local(dest)
            with peer.fs_lock:
                ok = (os.path.exists(path) and not os.path.exists(target)
                      and os.path.isdir(os.path.dirname(target)))
                if ok:
                    os.rename(path, target)
            if ok and _visible(dest):
                for hook in list(peer.on_publish):
                    hook(dest)
            return self.answer(action, 200, {"boolean": ok})
        return self.reply(400, _remote("IllegalArgumentException", "op %s not supported" % op))

    def do_DELETE(self):
        got = self.common("DELETE")
        if not got:
            return
        hdfs, op, q, body, action = got
        peer = self.server.peer
        path = self.local(hdfs)
        if op != "DELETE":
            return self.reply(400, _remote("IllegalArgumentException", "op %s not supported" % op))
        with peer.fs_lock:
            if not os.path.lexists(path):
                return self.answer(action, 200, {"boolean": False})
            if os.path.isdir(path):
                if os.listdir(path) and q.get("recursive") != "true":
                    return self.answer(action, 403, _remote(
                        "PathIsNotEmptyDirectoryException", hdfs + " is non empty': Directory is not empty"))
                shutil.rmtree(path)
            else:
                os.unlink(path)
        return self.answer(action, 200, {"boolean": True})

    @staticmethod
    def status_of(path, suffix):
        st = os.stat(path)
        return {"pathSuffix": suffix, "type": "DIRECTORY" if os.path.isdir(path) else "FILE",
                "length": 0 if os.path.isdir(path) else st.st_size,
                "modificationTime": int(st.st_mtime * 1000), "accessTime": 0,
                "blockSize": 134217728, "childrenNum": 0, "fileId": st.st_ino,
                "group": "supergroup", "owner": "etl", "permission": "644",
                "replication": 3, "storagePolicy": 0}

    def do_GET(self):
        got = self.common("GET")
        if not got:
            return
        hdfs, op, q, body, action = got
        peer = self.server.peer
        path = self.local(hdfs)
        if op == "GETFILESTATUS":
            if not hdfs_valid_name(hdfs):
                return self.invalid(hdfs)
            with peer.fs_lock:
                if not os.path.exists(path):
                    return self.answer(action, 404, _remote(
                        "FileNotFoundException", "File does not exist: " + hdfs))
                status = self.status_of(path, "")
            return self.answer(action, 200, {"FileStatus": status})
        if op == "LISTSTATUS":
            with peer.fs_lock:
                if not os.path.exists(path):
                    return self.answer(action, 404, _remote(
                        "FileNotFoundException", "File " + hdfs + " does not exist."))
                if os.path.isdir(path):
                    entries = [self.status_of(os.path.join(path, n), n)
                               for n in sorted(os.listdir(path))]
                else:
                    entries = [self.status_of(path, "")]
            return self.answer(action, 200, {"FileStatuses": {"FileStatus": entries}})
        return self.reply(400, _remote("IllegalArgumentException", "op %s not supported" % op))


class _DataNodeHandler(_HdfsHandler):
    def do_PUT(self):
        got = self.common("PUT", datanode=True)
        if not got:
            return
        hdfs, op, q, body, action = got
        if op != "CREATE":
            return self.reply(400, _remote("IllegalArgumentException", "DataNode: only CREATE"))
        self.server.peer.write_file(self, hdfs, self.local(hdfs), q, body, "false", action)


class WebHdfsPeer(_Peer):
    def __init__(self, root, httpfs=False):
        self.root = os.path.realpath(str(root))
        os.makedirs(self.root, exist_ok=True)
        self.httpfs = httpfs
        self.lock = threading.Lock()
        self.fs_lock = threading.RLock()  # the namespace: one operation at a time
        self.log = []
        # op -> [action, ...] for the next requests of that op: None (as
        # usual), a status (IOException), (status, exception, message),
        # "drop" (no answer, nothing done), "late" (done, answered after
        # late_s), "slow" (done after late_s: a write that completes after
        # the client gave up). "PUBLISH" is a RENAME to a visible name and
        # "DATANODE" the DataNode's part of a CREATE; they are looked up
        # before the op's own list.
        self.scripted = {}
        self.scripted_path = {}  # (op, HDFS path) -> [action, ...], looked up first
        self.hang = {}       # op (or PUBLISH, DATANODE) -> threading.Event to wait for
        self.late_s = 2.0
        self.on_publish = []  # called with the HDFS path after each RENAME to a visible name
        self.datanode = self._serve(_DataNodeHandler)
        self.namenode = self._serve(_NameNodeHandler)
        self.port = self.namenode.server_address[1]
        self.datanode_port = self.datanode.server_address[1]
        self.url = "http://127.0.0.1:%d" % self.port

    def fail_next(self, op, status, count=1):
        with self.lock:
            self.scripted.setdefault(op, []).extend([status] * count)

    def script(self, op, actions):
        with self.lock:
            self.scripted.setdefault(op, []).extend(actions)

    def script_path(self, op, hdfs, actions):
        with self.lock:
            self.scripted_path.setdefault((op, hdfs), []).extend(actions)

    def write_file(self, handler, hdfs, path, q, body, default_overwrite, action):
        ctype = handler.headers.get("Content-Type", "")
        if ctype != "application/octet-stream":
            return handler.reply(400, _remote("IllegalArgumentException",
                                              "Content-Type %r, want application/octet-stream" % ctype))
        if not hdfs_valid_name(hdfs):
            return handler.invalid(hdfs)
        overwrite = q.get("overwrite", default_overwrite) == "true"
        with self.fs_lock:
            if os.path.exists(path) and not overwrite:
                return handler.answer(action, 403, _remote(
                    "FileAlreadyExistsException", "%s for client 127.0.0.1 already exists" % hdfs))
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "wb") as f:
                f.write(body)
        handler.answer(action, 201, None, [("Location", "hdfs://127.0.0.1:8020" + hdfs)])

    def ops(self, op):
        with self.lock:
            return [e for e in self.log if e[1] == op]

    def publishes(self):
        return [e for e in self.ops("RENAME") if _visible(e[3].get("destination", ""))]

    def close(self):
        for ev in self.hang.values():
            ev.set()
        for s in (self.namenode, self.datanode):
            s.shutdown()
            s.server_close()


class HdfsConsumer:
    """A consumer that takes each file published under `under` (Spark's
    file source with cleanSource=archive, NiFi GetHDFS, an Oozie action
    archiving its input): `delay` seconds after a RENAME made it visible,
    it reads it and moves it into archive/ (mode "move") or deletes it
    ("delete"), as an HDFS client would, one namespace operation at a time
    with the NameNode's others. It keeps what it took, and every final name
    published more than once."""

    def __init__(self, peer, under, mode="move", delay=0.15):
        self.peer = peer
        self.under = under.rstrip("/") + "/"
        self.mode = mode
        self.delay = delay
        self.lock = threading.Lock()
        self.published = {}   # HDFS path -> times published
        self.republished = []  # HDFS paths published more than once
        self.taken = []       # (HDFS path, bytes), in the order taken
        self.failures = []
        self.pending = 0
        self.idle = threading.Condition(self.lock)
        peer.on_publish.append(self.saw)

    def saw(self, hdfs):
        if not hdfs.startswith(self.under):
            return
        with self.lock:
            self.published[hdfs] = self.published.get(hdfs, 0) + 1
            if self.published[hdfs] > 1:
                self.republished.append(hdfs)
            self.pending += 1
        t = threading.Timer(self.delay, self.take, args=(hdfs,))
        t.daemon = True
        t.start()

    def take(self, hdfs):
        peer = self.peer
        path = os.path.join(peer.root, hdfs.lstrip("/"))
        try:
            with peer.fs_lock:
                if not os.path.exists(path):
                    raise FileNotFoundError(hdfs + " vanished before it was taken")
                with open(path, "rb") as f:
                    data = f.read()
                if self.mode == "move":
                    archive = os.path.join(peer.root, "archive", hdfs.lstrip("/"))
                    os.makedirs(os.path.dirname(archive), exist_ok=True)
                    again = 1
                    while os.path.exists(archive):  # read (again) all the same
                        archive = "%s.again%d" % (archive.split(".again")[0], again)
                        again += 1
                    os.rename(path, archive)
                else:
                    os.unlink(path)
            with self.lock:
                self.taken.append((hdfs, data))
        except OSError as e:
            with self.lock:
                self.failures.append(str(e))
        finally:
            with self.lock:
                self.pending -= 1
                self.idle.notify_all()

    def wait_idle(self, timeout=60):
        with self.lock:
            return self.idle.wait_for(lambda: self.pending == 0, timeout=timeout)

    def lines(self):
        with self.lock:
            taken = list(self.taken)
        out = []
        for hdfs, data in taken:
            if hdfs.endswith(".gz"):
                data = gzip.decompress(data)
            out += data.decode("utf-8").split("\n")[:-1]
        return out

    def close(self):
        self.peer.on_publish.remove(self.saw)
