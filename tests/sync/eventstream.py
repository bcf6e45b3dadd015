"""A Server-Sent Events reader on a plain socket (chunked transfer decoded by
hand), so many streams can be held open cheaply and read without blocking
one another.

SseDecoder is the part without a socket: whatever reads the bytes (a
blocking socket here, an asyncio stream in tests/bench/soak.py) feeds them
to it. request() is the GET that opens a stream."""
import json
import socket
import time


def request(port, token=None, since=0, headers=(), query_token=False):
    """The bytes of a GET /v1/events request to the daemon on `port`."""
    path = "/v1/events?since=%d" % since
    lines = ["GET %s HTTP/1.1" % (path + ("&access_token=" + token if query_token else "")),
             "Host: 127.0.0.1:%d" % port]
    if token and not query_token:
        lines.append("Authorization: Bearer " + token)
    lines += list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


class SseDecoder:
    """The response head, then the chunked body, of one event stream."""

    def __init__(self):
        self.raw = b""
        self.head = None
        self.body = b""
        self.ended = False

    def feed(self, data):
        """Takes bytes read from the socket (b"" = closed)."""
        if not data:
            self.ended = True
        self.raw += data
        if self.head is None:
            if b"\r\n\r\n" not in self.raw:
                return
            self.head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        while True:
            if b"\r\n" not in self.raw:
                return
            size_line, rest = self.raw.split(b"\r\n", 1)
            size = int(size_line, 16)
            if size == 0:
                self.ended = True
                return
            if len(rest) < size + 2:
                return
            self.body += rest[:size]
            self.raw = rest[size + 2:]

    def status_line(self):
        return self.head.split(b"\r\n", 1)[0].decode() if self.head else None

    def header(self, name):
        for line in self.head.split(b"\r\n")[1:]:
            k, _, v = line.decode().partition(":")
            if k.strip().lower() == name.lower():
                return v.strip()
        return None

    def connected(self):
        return b": connected\n\n" in self.body

    @staticmethod
    def _parse(blocks):
        out = []
        for block in blocks:
            ev = {}
            for line in block.split("\n"):
                if line.startswith(":") or not line:
                    continue
                k, _, v = line.partition(": ")
                ev[k] = v
            if "data" in ev:
                out.append(ev)
        return out

    def events(self):
        """The dispatched events: dicts with id, event, data."""
        return self._parse(self.body.decode().split("\n\n")[:-1])

    def take_events(self):
        """The events dispatched since the last call, dropped from `body`
        (comments with them), so a stream held open for hours keeps only
        its unfinished block."""
        done, sep, rest = self.body.rpartition(b"\n\n")
        if not sep:
            return []
        self.body = rest
        return self._parse(done.decode().split("\n\n"))

    def seqs(self):
        return [json.loads(e["data"])["seq"] for e in self.events()]


class EventStream(SseDecoder):
    def __init__(self, port, token=None, since=0, headers=(), query_token=False):
        super().__init__()
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        self.sock.sendall(request(port, token, since, headers, query_token))

    def fileno(self):
        return self.sock.fileno()

    def pump(self, timeout=1.0):
        self.sock.settimeout(timeout)
        try:
            self.feed(self.sock.recv(65536))
        except socket.timeout:
            pass

    def wait_for(self, predicate, deadline_s=60):
        """Reads until predicate(self) holds; fails after a generous deadline."""
        deadline = time.monotonic() + deadline_s
        while not predicate(self):
            assert not self.ended, "the stream ended: %r %r" % (self.head, self.body)
            assert time.monotonic() < deadline, "no such event: %r" % self.body
            self.pump()
        return self

    def close(self):
        self.sock.close()
