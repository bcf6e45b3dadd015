#!/usr/bin/env python3
"""bench_streams.py - on-demand benchmark: 10,000 /v1/events streams on one
daemon while 1,000 of their clients push; RSS per idle stream, push
latency, and whether every stream heard its own client's change.

Not part of the test suite (not registered with ctest). Run as root (it
mounts):

    /usr/bin/python3 tests/bench/bench_streams.py [--streams 10000]
        [--clients 2000] [--pushers 1000] [--rounds 5] [--procs 4]
        [--bin DIR | --build DIR]

What it does:
  1. Builds a Release daemon (release_build.py: build-release/) unless
     --bin names a directory holding idbmount and idbmountctl.
  2. Makes --clients clients (idbmountctl client add), starts the daemon
     with no sinks and samples its RSS and descriptors idle.
  3. --procs reader processes (a descriptor limit is per process: the
     streams' client sockets are spread so no process needs more than the
     hard limit) each open their share of --streams streams, stream i
     belonging to client i mod --clients, on asyncio (no thread per
     stream), and report when all are connected. The daemon's RSS and
     descriptors are sampled again: (RSS with the streams - RSS idle) /
     streams is the cost of an idle stream.
  4. One pusher process (asyncio, one keep-alive connection per client)
     has the first --pushers clients push --rounds times each, one
     mutation a push, all at once; each push is timed from sending it to
     its whole answer.
  5. Each reader then waits (generous deadline) until every stream has
     seen the seq of its client's last push (clients that did not push:
     nothing), and reports the streams that did not, and any event naming
     another client's seq.
Prints one Markdown section for tests/bench/RESULTS.md. Exit status 0
when every stream heard its change and no request failed, else 1.
"""
import argparse
import asyncio
import json
import multiprocessing
import os
import resource
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import release_build  # noqa: E402
import soak  # noqa: E402  (Connection, proc_sample, percentile, the Daemon)
import eventstream  # noqa: E402  (on soak's path: the SSE request and decoder)

fs_conftest = soak.fs_conftest
DB, STORE = "shop", "orders"
MIB = 1024 * 1024


def raise_fd_limit(need):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if need > hard:
        raise SystemExit("bench_streams: a process needs %d descriptors; the hard limit is %d: "
                         "use more --procs" % (need, hard))
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


# ---------------------------------------------------------------- readers

async def hold_stream(port, token, decoder, connected):
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(eventstream.request(port, token, since=0))
    await writer.drain()
    decoder.seqs_seen = []
    while True:
        data = await reader.read(65536)
        decoder.feed(data)
        if decoder.connected() and not connected.done_for(decoder):
            connected.mark(decoder)
        for ev in decoder.take_events():
            decoder.seqs_seen.append(json.loads(ev["data"])["seq"])
        if decoder.ended:
            return


class Connected:
    def __init__(self, n):
        self.n, self.seen, self.all = n, set(), asyncio.Event()

    def done_for(self, d):
        return id(d) in self.seen

    def mark(self, d):
        self.seen.add(id(d))
        if len(self.seen) == self.n:
            self.all.set()


async def reader_main(port, mine, tokens, conn):
    """mine: [(stream index, client index)]. Talks to the parent over conn."""
    decoders = [eventstream.SseDecoder() for _ in mine]
    connected = Connected(len(mine))
    tasks = []
    for d, (_, c) in zip(decoders, mine):
        d.client = c
        tasks.append(asyncio.create_task(hold_stream(port, tokens[c], d, connected)))
        if len(tasks) % 200 == 0:
            await asyncio.sleep(0)  # let the first ones get going
    await connected.all.wait()
    conn.send(("connected", len(mine)))
    loop = asyncio.get_running_loop()
    seqs = await loop.run_in_executor(None, conn.recv)  # {client: [seq of each push]}
    expected = {c: max(s) for c, s in seqs.items()}
    owner = {seq: c for c, s in seqs.items() for seq in s}
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        missing = [d for d in decoders
                   if d.client in expected and expected[d.client] not in d.seqs_seen]
        if not missing:
            break
        await asyncio.sleep(0.5)
    failed = [t for t in tasks if t.done()]
    wrong = 0
    for d in decoders:
        # A pusher's stream may also hear its schema's change; any seq of
        # another client's push, or any event for a client that never
        # wrote, is wrong.
        wrong += sum(1 for s in d.seqs_seen
                     if d.client not in seqs or owner.get(s, d.client) != d.client)
    conn.send(("heard", len(missing), wrong, len(failed)))
    for t in tasks:
        t.cancel()


def reader_process(port, mine, tokens, conn):
    raise_fd_limit(len(mine) + 256)
    asyncio.run(reader_main(port, mine, tokens, conn))


# ---------------------------------------------------------------- pushers

async def pusher_main(port, tokens, rounds):
    latencies, errors, last = [], [], {}

    async def one(c):
        conn = soak.Connection(port, tokens[c])
        for r in range(rounds):
            body = json.dumps({"mutations": [{"id": "m-%d-%d" % (c, r), "db": DB, "store": STORE,
                                              "key": "k", "op": "put", "value": {"r": r}}]})
            t0 = time.perf_counter()
            try:
                status, _, payload = await conn.request("POST", "/v1/push", body)
            except (OSError, soak.Closed, asyncio.IncompleteReadError) as e:
                errors.append(repr(e))
                continue
            latencies.append(time.perf_counter() - t0)
            if status != 200:
                errors.append("%d %r" % (status, payload[:200]))
                continue
            last.setdefault(c, []).append(json.loads(payload)["results"][0]["seq"])
        conn.close()

    async def schema(c):
        conn = soak.Connection(port, tokens[c])
        body = json.dumps({"db": DB, "version": 1, "stores": [{"name": STORE}]})
        status, _, payload = await conn.request("POST", "/v1/schema", body)
        conn.close()
        if status != 200:
            errors.append("schema %d %r" % (status, payload[:200]))

    sem = asyncio.Semaphore(100)

    async def bounded(f, c):
        async with sem:
            await f(c)
    await asyncio.gather(*(bounded(schema, c) for c in range(len(tokens))))
    t0 = time.monotonic()
    await asyncio.gather(*(one(c) for c in range(len(tokens))))
    return latencies, errors, last, time.monotonic() - t0


def pusher_process(port, tokens, rounds, conn):
    raise_fd_limit(len(tokens) + 256)
    conn.send(asyncio.run(pusher_main(port, tokens, rounds)))


# ---------------------------------------------------------------- the run

def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--streams", type=int, default=10000)
    p.add_argument("--clients", type=int, default=2000)
    p.add_argument("--pushers", type=int, default=1000)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--procs", type=int, default=4)
    release_build.add_arguments(p)
    p.add_argument("--tmp")
    a = p.parse_args()
    idbmount, idbmountctl, where = release_build.binaries(a)
    fs_conftest.IDBMOUNT, fs_conftest.IDBMOUNTCTL = idbmount, idbmountctl
    tmp = tempfile.mkdtemp(prefix="bench_streams.", dir=a.tmp)
    data, mnt = os.path.join(tmp, "data"), os.path.join(tmp, "mnt")
    t0 = time.monotonic()
    import concurrent.futures
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        tokens = list(pool.map(lambda i: fs_conftest.ctl(data, "client", "add", "c%05d" % i)
                               .stdout.strip(), range(a.clients)))
    print("bench_streams: %d clients made in %.0f s" % (a.clients, time.monotonic() - t0),
          flush=True)
    daemon = fs_conftest.Daemon(data, mnt)
    load0 = os.getloadavg()
    daemon.start()
    ok = False
    try:
        port, pid = daemon.port(), daemon.proc.pid
        cap_line = [line for line in daemon.stderr().splitlines() if "capped at" in line]
        time.sleep(1)
        idle = soak.proc_sample(pid)
        shares = [[(i, i % a.clients) for i in range(k, a.streams, a.procs)]
                  for k in range(a.procs)]
        ctx = multiprocessing.get_context("fork")
        pipes, procs = [], []
        t0 = time.monotonic()
        for mine in shares:
            parent, child = ctx.Pipe()
            pr = ctx.Process(target=reader_process, args=(port, mine, tokens, child))
            pr.start()
            pipes.append(parent)
            procs.append(pr)
        for c in pipes:
            if not c.poll(600):
                raise SystemExit("bench_streams: the streams did not all connect in 10 min")
            c.recv()
        t_open = time.monotonic() - t0
        time.sleep(2)
        held = soak.proc_sample(pid)
        per_stream = (held[0] - idle[0]) / a.streams
        print("bench_streams: %d streams open in %.1f s; daemon RSS %.1f -> %.1f MiB (%.1f KiB "
              "a stream), descriptors %d -> %d, threads %d -> %d"
              % (a.streams, t_open, idle[0] / MIB, held[0] / MIB, per_stream / 1024, idle[1],
                 held[1], idle[2], held[2]), flush=True)
        parent, child = ctx.Pipe()
        pusher = ctx.Process(target=pusher_process,
                             args=(port, tokens[:a.pushers], a.rounds, child))
        pusher.start()
        latencies, errors, last, push_s = parent.recv()
        pusher.join()
        pushed = soak.proc_sample(pid)
        for c in pipes:
            c.send(last)
        missing = wrong = failed = 0
        for c in pipes:
            _, m, w, f = c.recv()
            missing, wrong, failed = missing + m, wrong + w, failed + f
        for pr in procs:
            pr.join()
        lat = sorted(latencies)
        p50, p99 = soak.percentile(lat, 0.5) * 1000, soak.percentile(lat, 0.99) * 1000
        hearing = sum(1 for i in range(a.streams) if i % a.clients in last)
        ok = not errors and not missing and not wrong and not failed
        print("bench_streams: %d pushes in %.1f s (%.0f/s), p50 %.1f ms, p99 %.1f ms, max %.1f "
              "ms, %d errors%s" % (len(lat), push_s, len(lat) / push_s, p50, p99,
                                   lat[-1] * 1000 if lat else 0, len(errors),
                                   (": " + errors[0]) if errors else ""))
        print("bench_streams: %d streams of pushing clients; %d did not hear their client's "
              "last change, %d events of another client's or a later seq, %d streams ended"
              % (hearing, missing, wrong, failed))
        print()
        print("## Event streams: %d on one daemon\n" % a.streams)
        print("%s, %s; load average %.2f at the start. Command: `/usr/bin/python3 "
              "tests/bench/bench_streams.py --streams %d --clients %d --pushers %d --rounds %d "
              "--procs %d`; %s.\n" % (
                  time.strftime("%Y-%m-%d", time.gmtime()), "kernel " + os.uname().release,
                  load0[0], a.streams, a.clients, a.pushers, a.rounds, a.procs, where))
        print("| figure | value |\n| --- | --- |")
        print("| daemon's log | `%s` |" % (cap_line[0] if cap_line else "(no cap line)"))
        print("| streams open at once | %d (%d clients, stream i of client i mod %d; %d "
              "reader processes) |" % (a.streams, a.clients, a.clients, a.procs))
        print("| time to open them all | %.1f s |" % t_open)
        print("| daemon RSS idle / with the streams / after the pushes | %.1f / %.1f / %.1f MiB |"
              % (idle[0] / MIB, held[0] / MIB, pushed[0] / MIB))
        print("| RSS per idle stream | %.1f KiB |" % (per_stream / 1024))
        print("| daemon descriptors idle / with the streams | %d / %d |" % (idle[1], held[1]))
        print("| daemon threads idle / with the streams | %d / %d |" % (idle[2], held[2]))
        print("| pushes (1 mutation each, %d clients x %d, all at once) | %d in %.1f s "
              "(%.0f/s), %d errors |" % (a.pushers, a.rounds, len(lat), push_s,
                                         len(lat) / push_s, len(errors)))
        print("| push latency p50 / p99 / max | %.1f / %.1f / %.1f ms |"
              % (p50, p99, lat[-1] * 1000 if lat else 0))
        print("| streams that heard their client's last change | %d of %d |"
              % (hearing - missing, hearing))
        print("| events of another client (must be 0) | %d |" % wrong)
    finally:
        fs_conftest.stop_cleanly(daemon)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
