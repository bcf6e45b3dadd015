#!/usr/bin/env python3
"""soak.py - on-demand soak test: many sync clients against one daemon for
minutes, while the mount is read; reports leaks and losses.

Not part of the test suite (not registered with ctest). Run as root (it
mounts):

    /usr/bin/python3 tests/bench/soak.py [--minutes 10] [--clients 1000]
        [--bin DIR | --build DIR] [--markdown FILE]

What it does:
  1. Builds a Release daemon in --build (build-release/ by default) unless
     --bin names a directory holding idbmount and idbmountctl
     (release_build.py); it prints which.
  2. Makes --clients clients with `idbmountctl client add` (one token
     each), starts the daemon (tests/fs/conftest.py's Daemon) with a dir
     sink into a spool directory on disk, and given --http-timeout and
     --keepalive.
  3. Every client, from one asyncio process (no thread per client), holds a
     /v1/events stream open (tests/sync/eventstream.py decodes it) and
     loops: one push of 1-50 mutations over --keys keys (~400-byte values
     from bench_sync.py; some deletes, some pushes with a stale base that
     must come back as conflicts), then pulls from its checkpoint, then
     waits 0..2x --pause seconds. Every answer is checked: a conflict
     where none was due, a stale base accepted, a conflict that names
     another revision than the last acknowledged one, a pulled change that
     is not a record's last acknowledged one are errors (only this client
     writes its tree). A request that fails (network, 503) is retried with
     the same mutation ids, as the browser library does, so every push
     ends acknowledged; after --give-up seconds of retries it is an error
     and its keys are left out of the checks below.
  4. Meanwhile `grep -rc` runs over the whole view (--view) in a loop, and
     `cat` reads random records there (every record must read back as
     JSON holding its "mid"); a record deleted between listing and
     reading, or a revision replaced between open and read (ESTALE), is a
     race, counted apart, not an error.
  5. Every --interval seconds it prints a row: the daemon's RSS, open
     descriptors and threads (sampled from /proc every --sample seconds),
     CPU of the daemon and of this process, push latency p50/p99/max,
     pushes/s, pulls, events, errors. Latency is timed here, from sending
     a push to its whole answer, so it includes this process's own delays
     when its CPU is short (its column says how busy it was).
  6. At the end: every client's stream must see the last change it made;
     every acknowledged push must be in the store (the mount is listed
     and every record read: its key set, its "mid" and its
     user.idbmount.rev match the last acknowledged answer); after the
     sink caught up and the daemon stopped cleanly, every seq of the
     change log must be in the spool files exactly once. Leaks: after the
     warm-up (the first fifth of the run, at least a minute) the RSS may
     grow by at most --rss-tolerance MiB, the descriptors by
     --fd-tolerance and the threads by --thread-tolerance (median of the
     first tenth after the warm-up against the last tenth); once every
     client has disconnected, the descriptors other than the per-thread
     ones (a thread's SQLite files, a FUSE worker's /dev/fuse clone) must
     be back within --fd-leftover of what the daemon held before the
     clients came.

Exit status: 0 when nothing was lost, nothing leaked beyond the tolerance
and no error other than retried ones occurred; 1 otherwise; 2 when the
soak could not run at all.

The data directory, mount and spool go into a new directory under --tmp
(the system's temporary directory by default; the file system it is on is
printed), removed at the end unless --keep.

Loads tests/fs/conftest.py (which imports pytest, installed with the test
dependencies) for the Daemon; everything else is the standard library.
"""
import argparse
import asyncio
import collections
import concurrent.futures
import importlib.util
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "sync"))
from bench_sync import make_value  # noqa: E402  (the ~400-byte values)
import release_build  # noqa: E402
import eventstream  # noqa: E402  (the SSE request and decoder)

_spec = importlib.util.spec_from_file_location(
    "fs_conftest", os.path.join(REPO, "tests", "fs", "conftest.py"))
fs_conftest = importlib.util.module_from_spec(_spec)
try:
    _spec.loader.exec_module(fs_conftest)
except ModuleNotFoundError as _e:
    raise SystemExit("soak: tests/fs/conftest.py needs %s: run with /usr/bin/python3 "
                     "(Debian's python3-pytest, from install-deps.sh --test)" % _e.name)

DB, STORE = "shop", "orders"
MIB = 1024 * 1024

# Kinds of trouble that are part of normal life and handled as a browser
# would (retry, reconnect): counted and shown, but no reason to fail.
RETRIED_PREFIXES = ("retried:",)
# Races between the mount readers and the writers: shown, never errors.
RACE_PREFIXES = ("race:",)


# ---------------------------------------------------------------- figures

class Stats:
    """What happened, per interval and in total. Only the event loop's
    thread and the two reader threads write here, under `lock`."""

    def __init__(self):
        self.lock = threading.Lock()
        self.errors = collections.Counter()
        self.first_error = {}
        self.totals = collections.Counter()
        self.new_interval()

    def new_interval(self):
        self.latencies = []
        self.interval = collections.Counter()

    def count(self, what, n=1):
        with self.lock:
            self.interval[what] += n
            self.totals[what] += n

    def error(self, kind, detail=""):
        with self.lock:
            self.errors[kind] += 1
            self.interval["retried" if kind.startswith(RETRIED_PREFIXES) else "errors"] += 1
            self.first_error.setdefault(kind, detail)

    def take(self):
        with self.lock:
            lat, counts = self.latencies, self.interval
            self.new_interval()
        return lat, counts


def proc_sample(pid):
    """(RSS in bytes, open descriptors, threads, CPU seconds, anonymous
    RSS in bytes) of `pid`. The anonymous part is the heap and stacks; the
    rest is mapped files (the program, libraries, SQLite's -shm)."""
    rss = threads = anon = 0
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1]) * 1024
            elif line.startswith("RssAnon:"):
                anon = int(line.split()[1]) * 1024
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    fds = len(os.listdir("/proc/%d/fd" % pid))
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return rss, fds, threads, cpu, anon


def fd_kinds(pid):
    """The daemon's open descriptors by what they point at (sockets,
    pipes and anonymous inodes by type, files by path)."""
    kinds = collections.Counter()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            target = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        kinds[target.split(":[", 1)[0] if ":[" in target else target] += 1
    return kinds


def per_thread(kind, data):
    """Descriptors a daemon thread opens once for its life: its SQLite
    connection's files (each thread has one, opened at its first use)
    and, for a FUSE worker, its clone of /dev/fuse."""
    return kind == "/dev/fuse" or kind in [os.path.join(data, "idbmount.db" + s)
                                           for s in ("", "-wal", "-shm")]


def connection_fds(kinds, data):
    """Descriptors that are not per_thread: sockets, pipes, files the
    flusher writes, ...: what one request or stream might leave open."""
    return sum(n for k, n in kinds.items() if not per_thread(k, data))


def file_system(path):
    """"TYPE (SOURCE)" of the mount that holds `path`."""
    path = os.path.realpath(path)
    best = ("", "?", "?")
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4]
            rest = fields[fields.index("-") + 1:]
            if ((path == point or path.startswith(point.rstrip("/") + "/"))
                    and len(point) >= len(best[0])):
                best = (point, rest[0], rest[1])
    return "%s (%s)" % (best[1], best[2])


def own_cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    c = resource.getrusage(resource.RUSAGE_CHILDREN)  # grep and cat
    return r.ru_utime + r.ru_stime, c.ru_utime + c.ru_stime


def percentile(sorted_values, p):
    if not sorted_values:
        return 0.0
    return sorted_values[min(len(sorted_values) - 1, int(p * (len(sorted_values) - 1) + 0.5))]


# ---------------------------------------------------------------- HTTP

class Closed(Exception):
    """The daemon closed the connection before answering."""


class Connection:
    """One keep-alive HTTP/1.1 connection on asyncio streams: what
    http.client does, without a thread per client."""

    def __init__(self, port, token):
        self.port, self.token = port, token
        self.reader = self.writer = None
        self.used = False  # answered a request already (a kept-alive one)

    async def request(self, method, path, body=None):
        """(status, headers, body bytes). Raises OSError, Closed,
        asyncio.IncompleteReadError; the connection is then closed."""
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
            self.used = False
        head = ["%s %s HTTP/1.1" % (method, path), "Host: 127.0.0.1:%d" % self.port,
                "Authorization: Bearer " + self.token]
        data = b""
        if body is not None:
            data = body.encode()
            head += ["Content-Type: application/json", "Content-Length: %d" % len(data)]
        try:
            self.writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
            await self.writer.drain()
            status_line = await self.reader.readline()
            if not status_line:
                raise Closed("closed before the answer" +
                             (" (a kept-alive connection)" if self.used else ""))
            status = int(status_line.split()[1])
            headers = {}
            while True:
                line = await self.reader.readline()
                if line in (b"\r\n", b""):
                    break
                k, _, v = line.decode("latin-1").partition(":")
                headers[k.strip().lower()] = v.strip()
            if "content-length" not in headers:
                raise Closed("an answer without Content-Length: %r" % headers)
            payload = await self.reader.readexactly(int(headers["content-length"]))
        except BaseException:
            self.close()
            raise
        self.used = True
        if headers.get("connection", "").lower() == "close":
            self.close()
        return status, headers, payload

    def close(self):
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def error_kind(e):
    if isinstance(e, asyncio.TimeoutError):
        return "timeout"
    if isinstance(e, Closed):
        return "closed: " + str(e).split(":")[0]
    if isinstance(e, asyncio.IncompleteReadError):
        return "closed mid-answer"
    return type(e).__name__


def error_body(payload):
    try:
        return json.loads(payload).get("error", "?")
    except ValueError:
        return payload[:60].decode(errors="replace")


# ---------------------------------------------------------------- clients

class Record:
    __slots__ = ("rev", "deleted", "mid", "seq")

    def __init__(self, rev, deleted, mid, seq):
        self.rev, self.deleted, self.mid, self.seq = rev, deleted, mid, seq


class Client:
    def __init__(self, name, token, rng):
        self.name, self.token, self.rng = name, token, rng
        self.records = {}      # key -> Record, as the last acknowledged answer says
        self.unknown = set()   # keys of a push given up on: their fate is unknown
        self.next_mid = 0
        self.checkpoint = 0
        self.last_seq = 0      # highest seq of an acknowledged change
        self.event_seq = 0     # highest seq its event stream announced
        self.events_wanted = True
        self.stream_writer = None


class Soak:
    def __init__(self, a, port, values, stats, acked):
        self.a, self.port, self.values, self.stats, self.acked = a, port, values, stats, acked
        self.stop = asyncio.Event()

    # ---- the event stream ---------------------------------------------
    async def follow_events(self, c):
        """Holds c's /v1/events stream open for the whole run; reconnects
        (since the last seq seen, after the stream's `retry: 2000`) when it
        ends, counting why."""
        silent = 3 * self.a.keepalive + 10
        while c.events_wanted:
            dec = eventstream.SseDecoder()
            try:
                reader, c.stream_writer = await asyncio.open_connection("127.0.0.1", self.port)
                c.stream_writer.write(eventstream.request(self.port, c.token, c.event_seq))
                while c.events_wanted:
                    try:
                        data = await asyncio.wait_for(reader.read(65536), silent)
                    except asyncio.TimeoutError:
                        self.stats.error("events: stream silent for %d s (no keep-alive)"
                                         % silent, c.name)
                        break
                    dec.feed(data)
                    if dec.head is not None and not dec.status_line().startswith("HTTP/1.1 200"):
                        self.stats.error("events: " + dec.status_line(), c.name)
                        break
                    for ev in dec.take_events():
                        seq = json.loads(ev["data"])["seq"]
                        if seq < c.event_seq:
                            self.stats.error("events: seq went back", "%s %d < %d" %
                                             (c.name, seq, c.event_seq))
                        c.event_seq = max(c.event_seq, seq)
                        self.stats.count("events")
                    if dec.ended:
                        if c.events_wanted:
                            self.stats.error("events: the daemon ended a stream", c.name)
                        break
            except (OSError, ValueError, KeyError) as e:
                if c.events_wanted:
                    self.stats.error("events: " + error_kind(e), "%s: %r" % (c.name, e))
            finally:
                if c.stream_writer is not None:
                    c.stream_writer.close()
                    c.stream_writer = None
            if c.events_wanted:
                self.stats.count("stream reconnects")
                await asyncio.sleep(2)

    # ---- requests with retries ----------------------------------------
    async def call(self, conn, c, what, method, path, body=None):
        """The answer (status, payload), retrying network failures and 503
        as the browser library does; None after --give-up seconds. A
        kept-alive connection the daemon closed is reopened at once."""
        deadline = time.monotonic() + self.a.give_up
        delay = 0.2
        while True:
            t0 = time.monotonic()
            try:
                status, headers, payload = await asyncio.wait_for(
                    conn.request(method, path, body), self.a.request_timeout)
            except (OSError, Closed, asyncio.TimeoutError, asyncio.IncompleteReadError,
                    ValueError) as e:
                conn.close()
                kind = error_kind(e)
                if kind.startswith("closed") and "kept-alive" in str(e):
                    self.stats.error("retried: %s: the daemon closed a kept-alive connection"
                                     % what, c.name)
                    continue
                self.stats.error("retried: %s: %s" % (what, kind), "%s: %r" % (c.name, e))
            else:
                if status == 200:
                    return t0, status, payload
                if status != 503:
                    return t0, status, payload
                self.stats.error("retried: %s: 503 %s" % (what, error_body(payload)), c.name)
                delay = max(delay, float(headers.get("retry-after", "1")))
            if time.monotonic() > deadline:
                return t0, None, None
            await asyncio.sleep(delay * (0.5 + c.rng.random()))
            delay = min(delay * 2, 10)

    # ---- one client ---------------------------------------------------
    async def run_client(self, c, start_delay):
        """Returns the client's event stream task, which runs on."""
        await asyncio.sleep(start_delay)
        events = asyncio.ensure_future(self.follow_events(c))
        conn = Connection(self.port, c.token)
        try:
            schema = json.dumps({"db": DB, "version": 1, "stores": [{"name": STORE}]})
            _, status, payload = await self.call(conn, c, "schema", "POST", "/v1/schema", schema)
            if status != 200:
                self.stats.error("schema: HTTP %s" % status, repr(payload)[:200])
                return events
            while not self.stop.is_set():
                await self.push(conn, c)
                await self.pull(conn, c)
                try:
                    await asyncio.wait_for(self.stop.wait(), c.rng.uniform(0, 2 * self.a.pause))
                except asyncio.TimeoutError:
                    pass
        except (ValueError, KeyError, TypeError) as e:  # an answer not as the protocol says
            self.stats.error("client stopped: %s" % type(e).__name__, "%s: %r" % (c.name, e))
        finally:
            conn.close()
        return events

    def batch(self, c):
        """(body, [(key, mid, op, expectation)]): 1-50 mutations on distinct
        keys; ~10% deletes of live records, ~5% puts with a stale base."""
        rng = c.rng
        keys = rng.sample(range(self.a.keys), rng.randint(1, min(50, self.a.keys)))
        parts, plan = [], []
        for k in keys:
            key = "r%05d" % k
            if key in c.unknown:
                continue
            mid = "%s-%d" % (c.name, c.next_mid)
            c.next_mid += 1
            rec = c.records.get(key)
            live = rec is not None and not rec.deleted
            r = rng.random()
            if live and r < 0.10:
                op, base, expect = "delete", rec.rev, "ok"
            elif live and r < 0.15:
                op, base, expect = "put", (rec.rev - 1 if rec.rev > 1 else None), "conflict"
            else:
                op, base, expect = "put", (rec.rev if live else None), "ok"
            m = ('{"id":"%s","db":"%s","store":"%s","key":"%s","op":"%s","base":%s'
                 % (mid, DB, STORE, key, op, "null" if base is None else base))
            if op == "put":
                value = self.values[rng.randrange(len(self.values))]
                m += ',"value":{"mid":"%s",%s' % (mid, value[1:])
            parts.append(m + "}")
            plan.append((key, mid, op, expect))
        return '{"mutations":[' + ",".join(parts) + "]}", plan

    async def push(self, conn, c):
        body, plan = self.batch(c)
        if not plan:
            return
        t0, status, payload = await self.call(conn, c, "push", "POST", "/v1/push", body)
        if status is None:
            self.stats.error("push: given up after %d s of retries" % self.a.give_up, c.name)
            c.unknown.update(key for key, _, _, _ in plan)
            return
        if status != 200:
            self.stats.error("push: HTTP %d %s" % (status, error_body(payload)),
                             payload[:300].decode(errors="replace"))
            return
        with self.stats.lock:
            self.stats.latencies.append(time.monotonic() - t0)
        self.stats.count("pushes")
        self.stats.count("mutations", len(plan))
        results = json.loads(payload)["results"]
        if len(results) != len(plan):
            self.stats.error("push: results do not match the mutations", c.name)
            c.unknown.update(key for key, _, _, _ in plan)
            return
        for (key, mid, op, expect), res in zip(plan, results):
            rec = c.records.get(key)
            if res.get("id") != mid:
                self.stats.error("push: a result for another mutation", "%s %r" % (mid, res))
                c.unknown.add(key)
            elif res["status"] == "ok":
                if expect != "ok":
                    self.stats.error("push: a stale base was accepted", "%s %s" % (c.name, key))
                seq = res["seq"]
                c.records[key] = Record(res["rev"], op == "delete", mid, seq)
                c.last_seq = max(c.last_seq, seq)
                self.acked.mark(seq)
                self.stats.count("deletes" if op == "delete" else "puts")
            elif res["status"] == "conflict":
                if expect != "conflict":
                    self.stats.error("push: an unexpected conflict", "%s %s %r" %
                                     (c.name, key, res))
                    c.unknown.add(key)
                elif res["current"]["rev"] != rec.rev or res["current"]["deleted"] != rec.deleted:
                    # Only this client writes its tree: the server's current
                    # revision must be the one it last acknowledged.
                    self.stats.error("push: a conflict names another current revision",
                                     "%s %s %r, acknowledged rev %d" % (c.name, key, res, rec.rev))
                self.stats.count("conflicts")
            else:
                self.stats.error("push: status " + str(res["status"]), repr(res))

    async def pull(self, conn, c):
        while True:
            _, status, payload = await self.call(
                conn, c, "pull", "GET", "/v1/pull?since=%d&limit=500" % c.checkpoint)
            if status != 200:
                self.stats.error("pull: HTTP %s" % status,
                                 payload[:300].decode(errors="replace") if payload else c.name)
                return
            answer = json.loads(payload)
            self.stats.count("pulls")
            self.stats.count("pulled changes", len(answer["changes"]))
            for ch in answer["changes"]:
                rec = c.records.get(ch["key"])
                if ch["key"] in c.unknown:
                    continue
                # Only this client writes its tree, and a pull gives each
                # record's latest change: the one last acknowledged.
                if (ch["seq"] <= c.checkpoint or rec is None or ch["seq"] != rec.seq
                        or ch["rev"] != rec.rev):
                    self.stats.error("pull: a change that is not the last acknowledged one",
                                     "%s since %d: %r, acknowledged %r" %
                                     (c.name, c.checkpoint, ch, rec and (rec.rev, rec.seq)))
            if answer["checkpoint"] < c.checkpoint:
                self.stats.error("pull: the checkpoint went back", c.name)
            c.checkpoint = max(c.checkpoint, answer["checkpoint"])
            if not answer["more"]:
                return


class SeqMarks:
    """One byte per seq (up to 255): what was acknowledged, what a spool
    file holds. Millions of seqs fit in a few MiB."""

    def __init__(self):
        self.b = bytearray(1 << 16)

    def mark(self, seq):
        if seq >= len(self.b):
            self.b.extend(bytes(max(seq + 1 - len(self.b), len(self.b))))
        if self.b[seq] < 255:
            self.b[seq] += 1

    def get(self, seq):
        return self.b[seq] if seq < len(self.b) else 0


# ---------------------------------------------------------------- readers

def grep_loop(mnt, stop, stats):
    """`grep -rc '"mid"'` over the whole mount, again and again: every
    record holds one such line, so a count of 0 is a record read wrong."""
    while not stop.is_set():
        p = subprocess.run(["grep", "-rc", '"mid"', mnt], capture_output=True, text=True)
        lines = p.stdout.splitlines()
        stats.count("greps")
        stats.count("grepped records", len(lines))
        # grep prints a count of 0 also for a file it could not read
        # (a race below): those are no record read wrong.
        unread = {line.split(": ")[1] for line in p.stderr.splitlines()
                  if line.startswith("grep: ") and line.count(": ") >= 2}
        zeros = [line for line in lines
                 if line.endswith(":0") and line[:-2] not in unread]
        if zeros:
            stats.error('grep: a record read without its "mid" line', zeros[0])
        for line in p.stderr.splitlines():
            if line.endswith("No such file or directory"):
                stats.count("race: grep found a listed record deleted")
            elif line.endswith("Stale file handle"):
                # A revision replaced between open and first read: the
                # view says so rather than give a mix (README, "The view").
                stats.count("race: grep found a revision replaced")
            else:
                stats.error("grep: " + line.rsplit(": ", 1)[-1], line)
        if p.returncode not in (0, 1) and not p.stderr:
            stats.error("grep: exit %d" % p.returncode, "")


def cat_loop(mnt, names, stop, stats, rng):
    """`cat` of one random record at a time (about 50 a second)."""
    while not stop.is_set():
        store = os.path.join(mnt, rng.choice(names), DB, STORE)
        try:
            files = os.listdir(store)
        except FileNotFoundError:  # the client has not made its store yet
            stop.wait(0.02)
            continue
        files = [f for f in files if f.endswith(".json")]
        if not files:
            stop.wait(0.02)
            continue
        path = os.path.join(store, rng.choice(files))
        p = subprocess.run(["cat", path], capture_output=True)
        stats.count("cats")
        if p.returncode != 0:
            if p.stderr.endswith(b"No such file or directory\n"):
                stats.count("race: cat found a listed record deleted")
            elif p.stderr.endswith(b"Stale file handle\n"):
                stats.count("race: cat found a revision replaced")
            else:
                stats.error("cat: " + p.stderr.decode(errors="replace").rsplit(": ", 1)[-1]
                            .strip(), path)
        else:
            try:
                if "mid" not in json.loads(p.stdout):
                    stats.error('cat: a record without "mid"', path)
            except ValueError:
                out = p.stdout
                stats.error("cat: a record that is not JSON", "%s: %d bytes, %r ... %r" % (
                    os.path.relpath(path, mnt), len(out), out[:24], out[-48:]))
        stop.wait(0.02)


# ---------------------------------------------------------------- checks

def check_store(mnt, clients):
    """Every acknowledged push is in the store: per client, the mount's
    record files are exactly the live keys, and each one holds the value
    of the last acknowledged put (its "mid") at that revision."""
    problems = collections.Counter()
    examples = {}
    records = 0
    for c in clients:
        store = os.path.join(mnt, c.name, DB, STORE)
        try:
            names = set(os.listdir(store))
        except FileNotFoundError:
            names = set()
        expected = {k for k, r in c.records.items() if not r.deleted}
        for key in expected - {n[:-5] for n in names} - c.unknown:
            problems["acknowledged put missing from the mount"] += 1
            examples.setdefault("acknowledged put missing from the mount", "%s/%s" % (c.name, key))
        for n in names:
            key = n[:-5]
            if key in c.unknown:
                continue
            if key not in expected:
                what = ("acknowledged delete still in the mount" if key in c.records
                        else "a record nobody pushed")
                problems[what] += 1
                examples.setdefault(what, "%s/%s" % (c.name, n))
                continue
            path = os.path.join(store, n)
            with open(path, "rb") as f:
                value = json.loads(f.read())
            rev = int(os.getxattr(path, "user.idbmount.rev"))
            records += 1
            rec = c.records[key]
            if value.get("mid") != rec.mid or rev != rec.rev:
                what = "a record not at its last acknowledged value and revision"
                problems[what] += 1
                examples.setdefault(what, "%s: mid %s rev %d, acknowledged %s rev %d" %
                                    (path, value.get("mid"), rev, rec.mid, rec.rev))
    return records, problems, examples


def wait_sink(ctl, data, deadline_s):
    """Waits for the dir sink to take the whole change log; returns
    (last_seq, cursor)."""
    deadline = time.monotonic() + deadline_s
    while True:
        st = json.loads(ctl(data, "status", "--json").stdout)
        cursor = next(s["cursor"] for s in st["sinks"] if s["name"] == "spool")
        if cursor >= st["last_seq"] or time.monotonic() > deadline:
            return st["last_seq"], cursor
        time.sleep(0.5)


def check_spool(spool, last_seq, acked):
    """Counts every line of every batch file by seq. Returns (lines,
    problems, examples, leftover temp files)."""
    seen = SeqMarks()
    lines = 0
    leftovers = []
    for dirpath, _, files in os.walk(spool):
        for n in files:
            if n.startswith("."):
                leftovers.append(n)
                continue
            with open(os.path.join(dirpath, n), "rb") as f:
                for line in f:
                    # Lines start {"seq":N, (the change line's first member).
                    if line.startswith(b'{"seq":'):
                        seq = int(line[7:line.index(b",")])
                    else:
                        seq = json.loads(line)["seq"]
                    seen.mark(seq)
                    lines += 1
    problems = collections.Counter()
    examples = {}
    for seq in range(1, max(last_seq, len(seen.b) - 1) + 1):
        n = seen.get(seq)
        what = None
        if n == 0 and acked.get(seq):
            what = "acknowledged change missing from the spool"
        elif n == 0 and seq <= last_seq:
            what = "change of the log missing from the spool"
        elif n > 1:
            what = "change in the spool more than once"
        elif n == 1 and seq > last_seq:
            what = "change in the spool beyond the log"
        if what:
            problems[what] += 1
            examples.setdefault(what, "seq %d" % seq)
    return lines, problems, examples, leftovers


def slope_per_minute(samples, start, index):
    pts = [(s[0], s[index]) for s in samples if s[0] >= start]
    if len(pts) < 3:
        return 0.0
    mx = sum(t for t, _ in pts) / len(pts)
    my = sum(v for _, v in pts) / len(pts)
    den = sum((t - mx) ** 2 for t, _ in pts)
    return 60 * sum((t - mx) * (v - my) for t, v in pts) / den if den else 0.0


# ---------------------------------------------------------------- the run

def run(a, idbmount, idbmountctl, where):
    fs_conftest.IDBMOUNT, fs_conftest.IDBMOUNTCTL = idbmount, idbmountctl
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 3 * a.clients + 512  # two sockets per client, the readers, margin
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    if min(want, hard) < want:
        raise SystemExit("soak: %d clients need about %d descriptors; the hard limit is %d"
                         % (a.clients, want, hard))

    tmp = tempfile.mkdtemp(prefix="soak.", dir=a.tmp)
    data, mnt, view, spool = (os.path.join(tmp, n) for n in ("data", "mnt", "view", "spool"))
    os.makedirs(view)
    config = os.path.join(tmp, "idbmount.ini")
    with open(config, "w") as f:
        f.write("[sink spool]\ntype = dir\npath = %s\n" % spool)
    print("soak: %s" % where)
    print("soak: %d clients, %.1f minutes, %d keys each, pause 0..%.1f s; data and spool in "
          "%s, on %s" % (a.clients, a.minutes, a.keys, 2 * a.pause, tmp, file_system(tmp)),
          flush=True)

    t0 = time.monotonic()
    names = ["c%05d" % i for i in range(a.clients)]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        tokens = list(pool.map(
            lambda n: fs_conftest.ctl(data, "client", "add", n).stdout.strip(), names))
    print("soak: %d clients made with idbmountctl client add in %.1f s"
          % (len(names), time.monotonic() - t0), flush=True)

    rng = random.Random(a.seed)
    values = [json.dumps(make_value(i, rng), separators=(",", ":")) for i in range(4096)]
    # Readers read the view (--view), as the README tells analysts to: a
    # reader of the read-write mount may get a mix of two revisions of a
    # record replaced while it reads, as a reader of a local file being
    # rewritten in place may (README, "The view").
    daemon = fs_conftest.Daemon(data, mnt, args=[
        "--config", config, "--http-timeout", str(a.http_timeout),
        "--keepalive", str(a.keepalive), "--view", view])
    stats = Stats()
    acked = SeqMarks()
    clients = [Client(n, t, random.Random("%d-%s" % (a.seed, n))) for n, t in zip(names, tokens)]
    report = {"where": "%s; --http-timeout %d, --keepalive %d; spool on %s" % (
                  where, a.http_timeout, a.keepalive, file_system(tmp)), "data": data, "load_start": os.getloadavg(), "rows": [], "stats": stats,
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
              "kernel": os.uname().release}
    daemon.start()
    try:
        port = daemon.port()
        pid = daemon.proc.pid
        time.sleep(1)
        report["idle"] = proc_sample(pid)
        report["idle_fds"] = fd_kinds(pid)
        verdict = asyncio.run(drive(a, port, pid, view, clients, values, stats, acked, report))
        report.update(verdict)
        report["load_end"] = os.getloadavg()

        print("soak: checking the store through the mount", flush=True)
        t1 = time.monotonic()
        records, problems, examples = check_store(mnt, clients)
        report["store"] = (records, problems, examples, time.monotonic() - t1)

        print("soak: waiting for the dir sink to take the whole change log", flush=True)
        last_seq, cursor = wait_sink(fs_conftest.ctl, data, a.sink_wait)
        report["sink_wait"] = (last_seq, cursor)
    finally:
        rc = daemon.stop()
        fs_conftest.unmount(mnt)
        fs_conftest.unmount(view)
    report["daemon_rc"] = rc
    report["daemon_log_tail"] = daemon.stderr()[-2000:]
    report["spool"] = check_spool(spool, last_seq, acked)
    report["acked"] = sum(1 for x in acked.b if x)
    report["tmp"] = tmp
    return report


async def drive(a, port, pid, mnt, clients, values, stats, acked, report):
    soak = Soak(a, port, values, stats, acked)
    loop = asyncio.get_running_loop()
    ramp = min(30.0, a.minutes * 60 / 10)
    tasks = [asyncio.ensure_future(soak.run_client(c, ramp * i / len(clients)))
             for i, c in enumerate(clients)]

    readers_stop = threading.Event()
    readers = [threading.Thread(target=grep_loop, args=(mnt, readers_stop, stats)),
               threading.Thread(target=cat_loop, args=(mnt, [c.name for c in clients],
                                                       readers_stop, stats,
                                                       random.Random(a.seed)))]
    for t in readers:
        t.start()

    samples = []  # (t, rss, fds, threads, anonymous rss)
    start = time.monotonic()
    end = start + a.minutes * 60
    cpu0 = report["idle"][3]
    last_cpu, last_own = cpu0, own_cpu()
    last_row = start
    print()
    header = ("| t | RSS MiB (anon) | fds | threads | daemon CPU | soak CPU (grep, cat) | load | pushes/s "
              "| mutations/s | push p50 / p99 / max ms | pulls | pulled | events | retried | errors |")
    print(header)
    print("|" + "---:|" * (header.count("|") - 1), flush=True)
    report["header"] = header
    # Samples on a fixed grid (start + k * sample), a row at the first
    # sample at or past each multiple of the interval, and one at the end.
    at, next_row = start, start + a.interval
    try:
        while at < end:
            at = min(at + a.sample, end)
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            now = time.monotonic()
            rss, fds, thr, cpu, anon = proc_sample(pid)
            samples.append((at - start, rss, fds, thr, anon))
            if at >= next_row - 1e-6 or at >= end:
                next_row += a.interval
                lat, counts = stats.take()
                lat.sort()
                dt = now - last_row
                own, children = own_cpu()
                row = ("| %d:%02d | %.1f (%.1f) | %d | %d | %.0f%% | %.0f%% (%.0f%%) | %.1f | %.0f | %.0f "
                       "| %.0f / %.0f / %.0f | %d | %d | %d | %d | %d |" % (
                           round(at - start) // 60, round(at - start) % 60, rss / MIB, anon / MIB,
                           fds, thr,
                           100 * (cpu - last_cpu) / dt,
                           100 * (own - last_own[0]) / dt,
                           100 * (children - last_own[1]) / dt,
                           os.getloadavg()[0], counts["pushes"] / dt, counts["mutations"] / dt,
                           1000 * percentile(lat, 0.5), 1000 * percentile(lat, 0.99),
                           1000 * (lat[-1] if lat else 0), counts["pulls"],
                           counts["pulled changes"], counts["events"], counts["retried"],
                           counts["errors"]))
                print(row, flush=True)
                report["rows"].append(row)
                last_row, last_cpu, last_own = now, cpu, (own, children)
    finally:
        soak.stop.set()
        readers_stop.set()
    elapsed = time.monotonic() - start
    print("\nsoak: stopping the clients", flush=True)
    stream_tasks = await asyncio.wait_for(asyncio.gather(*tasks), 600)
    for t in readers:
        await loop.run_in_executor(None, t.join)

    # Every client's stream must announce the last change it made.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(c.event_seq < c.last_seq for c in clients):
        await asyncio.sleep(0.2)
    missed = [c for c in clients if c.event_seq < c.last_seq]
    for c in clients:
        c.events_wanted = False
        if c.stream_writer is not None:
            c.stream_writer.close()
    await asyncio.gather(*stream_tasks, return_exceptions=True)

    # With every connection gone, the daemon's descriptors other than the
    # per-thread ones go back to what it held before the clients came (a
    # closed suspended stream is noticed at its next keep-alive).
    idle = connection_fds(report["idle_fds"], report["data"])
    deadline = time.monotonic() + 3 * a.keepalive + 10
    while True:
        kinds = fd_kinds(pid)
        if (connection_fds(kinds, report["data"]) <= idle + a.fd_leftover
                or time.monotonic() > deadline):
            break
        await asyncio.sleep(0.5)
    final = proc_sample(pid)
    return {"samples": samples, "elapsed": elapsed, "missed": missed,
            "fds_after_kinds": kinds, "final": final}


# ---------------------------------------------------------------- verdict

def verdict(a, r, clients_n):
    """Prints the end of the report; returns (exit status, markdown)."""
    out = []
    failed = []
    samples = r["samples"]
    warm = max(60.0, r["elapsed"] / 5)
    steady = [s for s in samples if s[0] >= warm]
    leak_lines = []
    if len(steady) >= 6:
        window = max(3, len(steady) // 10)
        first, last = steady[:window], steady[-window:]
        for name, index, tol, unit, scale in (("RSS", 1, a.rss_tolerance, " MiB", MIB),
                                              ("anonymous RSS", 4, a.rss_tolerance, " MiB", MIB),
                                              ("fds", 2, a.fd_tolerance, "", 1),
                                              ("threads", 3, a.thread_tolerance, "", 1)):
            m0 = statistics.median(s[index] for s in first) / scale
            m1 = statistics.median(s[index] for s in last) / scale
            slope = slope_per_minute(steady, warm, index) / scale
            half = (warm + steady[-1][0]) / 2
            slope2 = slope_per_minute(steady, half, index) / scale
            ok = m1 - m0 <= tol
            leak_lines.append("%s %s: %.1f -> %.1f%s (%+.1f; slope %+.2f/min after the warm-up, "
                              "%+.2f/min in its second half; tolerance +%s): %s"
                              % ("flat" if ok else "GREW", name, m0, m1, unit, m1 - m0, slope,
                                 slope2, tol, "ok" if ok else "LEAK"))
            if not ok:
                failed.append("%s grew by %.1f%s after warm-up" % (name, m1 - m0, unit))
    else:
        leak_lines.append("too short for a leak verdict (%d samples after a %.0f s warm-up)"
                          % (len(steady), warm))
    before, after = r["idle_fds"], r["fds_after_kinds"]
    conn0, conn1 = connection_fds(before, r["data"]), connection_fds(after, r["data"])
    ok = conn1 <= conn0 + a.fd_leftover
    leak_lines.append("fds before the clients came %d, after all had left %d; not counting "
                      "the per-thread ones (SQLite files, /dev/fuse clones) %d and %d "
                      "(tolerance +%d): %s" % (sum(before.values()), sum(after.values()), conn0,
                                              conn1, a.fd_leftover, "ok" if ok else "LEAK"))
    if not ok:
        failed.append("%d descriptors more after every client left" % (conn1 - conn0))
    grew = after - before
    if grew:
        leak_lines.append("descriptors held after and not before: " + ", ".join(
            "%d x %s" % (n, os.path.basename(k)) for k, n in grew.most_common()))
    if samples:
        peak = max(s[1] for s in samples)
        leak_lines.append("RSS idle %.1f MiB (%.1f anonymous), peak %.1f MiB, at the end "
                          "%.1f MiB (%.1f anonymous)" % (
                              r["idle"][0] / MIB, r["idle"][4] / MIB, peak / MIB,
                              r["final"][0] / MIB, r["final"][4] / MIB))

    loss_lines = []
    records, problems, examples, took = r["store"]
    loss_lines.append("store: %d live records read through the mount in %.0f s, %s"
                      % (records, took, "all at their last acknowledged value and revision"
                         if not problems else "PROBLEMS"))
    for k, n in problems.items():
        loss_lines.append("  - %s: %d (e.g. %s)" % (k, n, examples[k]))
        failed.append("store: %s (%d)" % (k, n))
    last_seq, cursor = r["sink_wait"]
    if cursor < last_seq:
        loss_lines.append("sink: still behind after %d s: cursor %d of %d" %
                          (a.sink_wait, cursor, last_seq))
        failed.append("the dir sink did not catch up")
    lines, sp_problems, sp_examples, leftovers = r["spool"]
    loss_lines.append("sink: %d changes in the log, %d acknowledged, %d lines in the spool: %s"
                      % (last_seq, r["acked"], lines, "each seq exactly once"
                         if not sp_problems else "PROBLEMS"))
    for k, n in sp_problems.items():
        loss_lines.append("  - %s: %d (e.g. %s)" % (k, n, sp_examples[k]))
        failed.append("sink: %s (%d)" % (k, n))
    if leftovers:
        loss_lines.append("  - temp files left in the spool after a clean stop: %d (e.g. %s)"
                          % (len(leftovers), leftovers[0]))
        failed.append("temp files left in the spool")
    missed = r["missed"]
    loss_lines.append("events: %d of %d streams saw their client's last change%s" % (
        clients_n - len(missed), clients_n,
        "" if not missed else "; missed e.g. %s (saw %d, made %d)" % (
            missed[0].name, missed[0].event_seq, missed[0].last_seq)))
    if missed:
        failed.append("%d event streams missed their last change" % len(missed))
    if r["daemon_rc"] != 0:
        failed.append("the daemon exited with %d" % r["daemon_rc"])
        loss_lines.append("daemon exit status %d; its log ends:\n%s"
                          % (r["daemon_rc"], r["daemon_log_tail"]))

    err_lines = []
    stats = r["stats"]
    for kind, n in sorted(stats.errors.items(), key=lambda kv: -kv[1]):
        err_lines.append("| %s | %d | %s |" % (kind, n, stats.first_error[kind][:160]
                                               .replace("|", "/")))
        if not kind.startswith(RETRIED_PREFIXES):
            failed.append("error: %s (%d)" % (kind, n))
    races = {k: v for k, v in stats.totals.items() if k.startswith(RACE_PREFIXES)}
    t = stats.totals
    summary = ("%d pushes (%d mutations: %d puts, %d deletes, %d conflicts as intended), "
               "%d pulls (%d changes), %d events, %d stream reconnects; %d greps over the "
               "mount (%d record reads), %d cats" % (
                   t["pushes"], t["mutations"], t["puts"], t["deletes"], t["conflicts"],
                   t["pulls"], t["pulled changes"], t["events"], t["stream reconnects"],
                   t["greps"], t["grepped records"], t["cats"]))

    md = []
    md.append("%s; %d CPUs, kernel %s; %d clients for %.1f minutes; %s; load average "
              "%.2f %.2f %.2f at the start, %.2f %.2f %.2f at the end." % (
                  (r["date"], os.cpu_count(), r["kernel"], clients_n, r["elapsed"] / 60,
                   r["where"]) + tuple(r["load_start"]) + tuple(r["load_end"])))
    md.append("")
    md.append(r["header"])
    md.append("|" + "---:|" * (r["header"].count("|") - 1))
    md.extend(r["rows"])
    md.append("")
    md.append(summary + ".")
    md.append("")
    md.append("Errors by kind (\"retried:\" ones were retried as the browser library does):")
    md.append("")
    md.append("| kind | count | first |")
    md.append("|---|---:|---|")
    md.extend(err_lines or ["| none | 0 | |"])
    for k, v in sorted(races.items()):
        md.append("| %s (not an error) | %d | |" % (k, v))
    md.append("")
    md.append("Leaks (warm-up %.0f s; median of the first tenth after it against the last):"
              % warm)
    md.append("")
    md.extend("- " + x for x in leak_lines)
    md.append("")
    md.append("Losses:")
    md.append("")
    md.extend(x if x.startswith("  - ") else "- " + x for x in loss_lines)
    md.append("")
    md.append("Verdict: " + ("PASS: nothing lost, nothing leaked beyond the tolerance, no "
                             "unretried error." if not failed else
                             "FAIL: " + "; ".join(failed) + "."))
    text = "\n".join(md)
    print()
    print(text[text.index(summary):], flush=True)
    return (1 if failed else 0), text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--keys", type=int, default=100, help="keys per client (default 100)")
    ap.add_argument("--pause", type=float, default=2.0,
                    help="mean seconds a client waits between rounds (default 2)")
    release_build.add_arguments(ap)
    ap.add_argument("--http-timeout", type=int, default=60)
    ap.add_argument("--keepalive", type=int, default=15)
    ap.add_argument("--sample", type=float, default=2, help="seconds between /proc samples")
    ap.add_argument("--interval", type=float, default=0,
                    help="seconds per table row (default: a twentieth of the run, >= 10)")
    ap.add_argument("--rss-tolerance", type=float, default=16, help="MiB (default 16)")
    ap.add_argument("--fd-tolerance", type=int, default=16,
                    help="growth of open descriptors after the warm-up (default 16)")
    ap.add_argument("--fd-leftover", type=int, default=2,
                    help="descriptors other than per-thread ones held after every client "
                         "left, beyond those held before they came (default 2)")
    ap.add_argument("--thread-tolerance", type=int, default=2)
    ap.add_argument("--request-timeout", type=float, default=120)
    ap.add_argument("--give-up", type=float, default=300,
                    help="seconds of retries before a request is given up")
    ap.add_argument("--sink-wait", type=float, default=600)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--tmp", default=None, help="where the data, mount and spool go")
    ap.add_argument("--keep", action="store_true", help="keep the data and spool directories")
    ap.add_argument("--markdown", help="also write the results as markdown to this file")
    a = ap.parse_args()
    if not a.interval:
        a.interval = max(10.0, round(a.minutes * 60 / 20 / a.sample) * a.sample)
    if os.geteuid() != 0:
        print("soak: run as root (it mounts)", file=sys.stderr)
        return 2
    idbmount, idbmountctl, where = release_build.binaries(a)
    try:
        r = run(a, idbmount, idbmountctl, where)
    except (RuntimeError, subprocess.CalledProcessError, AssertionError) as e:
        print("soak: could not run: %s" % e, file=sys.stderr)
        return 2
    status, text = verdict(a, r, a.clients)
    if a.markdown:
        with open(a.markdown, "w") as f:
            f.write(text + "\n")
    if not a.keep:
        shutil.rmtree(r["tmp"], ignore_errors=True)
    else:
        print("soak: kept %s" % r["tmp"])
    return status


if __name__ == "__main__":
    sys.exit(main())
