"""A Server-Sent Events reader on a plain socket (chunked transfer decoded by
hand), so many streams can be held open cheaply and read without blocking
one another."""
import socket
import time


class EventStream:
    def __init__(self, port, token=None, since=0, headers=(), query_token=False):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=60)
        path = "/v1/events?since=%d" % since
        lines = ["GET %s HTTP/1.1" % (path + ("&access_token=" + token if query_token else "")),
                 "Host: 127.0.0.1:%d" % port]
        if token and not query_token:
            lines.append("Authorization: Bearer " + token)
        lines += list(headers)
        self.sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        self.raw = b""
        self.head = None
        self.body = b""
        self.ended = False

    def fileno(self):
        return self.sock.fileno()

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

    def events(self):
        """The dispatched events: dicts with id, event, data."""
        out = []
        for block in self.body.decode().split("\n\n")[:-1]:
            ev = {}
            for line in block.split("\n"):
                if line.startswith(":") or not line:
                    continue
                k, _, v = line.partition(": ")
                ev[k] = v
            if "data" in ev:
                out.append(ev)
        return out

    def seqs(self):
        import json
        return [json.loads(e["data"])["seq"] for e in self.events()]

    def close(self):
        self.sock.close()
