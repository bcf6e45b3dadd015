"""A consumer that applies Flume's Spooling Directory source rules (and the
Flink/NiFi ones src/DESIGN.md lists in "What each consumer demands") to a
directory while the daemon writes.

What real Flume does (flume-ng-core ReliableSpoolingFileEventReader):
  - skips names starting with '.', and those ending in the completed
    suffix (".COMPLETED");
  - reads a file, then checks it did not change while it was read or after
    it appeared ("File has been modified since being read"), and renames it
    to NAME.COMPLETED; a name used twice, even one already renamed, stops
    the source ("File name has been re-used with different files");
  - the LINE deserializer ends lines at '\n' only and cuts a line at
    maxLineLength characters (2048 by default); invalid UTF-8 stops it
    (inputCharset UTF-8, decodeErrorPolicy FAIL).
This peer is stricter where our contract is: an empty file, a blank line, a
'\r', or a file not ending in '\n' are failures too, and a line over the
limit is a failure (Flume would silently cut it).

Every problem is collected in `failures`; `lines` holds what was consumed,
in the order consumed, and `consumed` each file's lines by name. (A
directory listing is no snapshot: a file published after another may be
listed first, so the order of consumption is not the order of the names,
for Flume as for this peer.)
"""
import os
import threading
import time

SUFFIX = ".COMPLETED"


class SpoolConsumer:
    def __init__(self, directory, max_line=2048, poll=0.01):
        self.dir = str(directory)
        self.max_line = max_line
        self.poll = poll
        self.failures = []
        self.lines = []
        self.consumed = {}  # name -> its lines
        self.files = 0
        self.seen = {}      # name -> (inode, size, mtime_ns) when first seen
        self.used = set()   # every name ever consumed
        self._stop = threading.Event()
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stops after one last sweep of the directory."""
        self._stop.set()
        self._thread.join(timeout=60)
        self.sweep()  # notes the files that came last,
        self.sweep()  # and takes them

    def _run(self):
        while not self._stop.is_set():
            try:
                self.sweep()
            except Exception as e:  # a peer that crashes is a failure too
                self.failures.append("consumer crashed: %r" % e)
                return
            time.sleep(self.poll)

    def sweep(self):
        names = sorted(os.listdir(self.dir))
        for name in names:
            path = os.path.join(self.dir, name)
            if name.startswith(".") or name.endswith(SUFFIX):
                continue
            if not os.path.isfile(path):
                continue
            try:
                st = os.stat(path)
            except FileNotFoundError:
                self.failures.append("%s vanished before it was consumed" % name)
                continue
            ident = (st.st_ino, st.st_size, st.st_mtime_ns)
            if name not in self.seen:
                if name in self.used:
                    self.failures.append("name re-used: %s" % name)
                self.seen[name] = ident
                # Taken on a later poll, so a change after it appeared
                # is seen.
                continue
            self.consume(name, path)

    def consume(self, name, path):
        first = self.seen[name]
        with open(path, "rb") as f:
            st = os.fstat(f.fileno())
            data = f.read()
        after = os.stat(path)
        for label, s in (("while it was read", st), ("after it was read", after)):
            if (s.st_ino, s.st_size, s.st_mtime_ns) != first:
                self.failures.append("%s changed %s (%r -> %r)" % (
                    name, label, first, (s.st_ino, s.st_size, s.st_mtime_ns)))
        self.consumed[name] = self.check_content(name, data)
        done = path + SUFFIX
        if os.path.exists(done):
            self.failures.append("%s: %s already exists" % (name, name + SUFFIX))
        os.rename(path, done)
        del self.seen[name]
        self.used.add(name)
        self.files += 1

    def check_content(self, name, data):
        if not data:
            self.failures.append("%s is empty" % name)
            return []
        if not data.endswith(b"\n"):
            self.failures.append("%s does not end with a newline" % name)
        try:
            text = data.decode("utf-8", errors="strict")
        except UnicodeDecodeError as e:
            self.failures.append("%s: invalid UTF-8: %s" % (name, e))
            return []
        lines = text.split("\n")[:-1]
        for i, line in enumerate(lines, 1):
            if not line:
                self.failures.append("%s:%d: blank line" % (name, i))
            if "\r" in line:
                self.failures.append("%s:%d: carriage return" % (name, i))
            if len(line) > self.max_line:
                self.failures.append("%s:%d: %d characters, over %d" % (
                    name, i, len(line), self.max_line))
            self.lines.append(line)
        return lines
