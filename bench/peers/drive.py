"""Load driver of bench/peers.sh: Anthropic Messages calls over HTTP/1.1 keep-alive connections.

  rate   PORT PATH MODEL RATE SECS      open loop at RATE calls/s (wrk2-style: each call's latency
                                        counts from when it was due, so a stalled proxy is not
                                        excused by the driver waiting); up to 512 connections
  stream PORT PATH MODEL SECS CONC      CONC streams at a time for SECS: time to the first SSE event
                                        and the gaps between content_block_delta events
  storm  PORT PATH MODEL RATE CALM STORM AFTER HINT MOCKPORT
                                        open loop at RATE; after CALM s the mock (control port
                                        MOCKPORT) answers 429 + retry-after: HINT for STORM s

Prints one JSON object. Latencies in milliseconds.
"""
import asyncio
import json
import sys
import time
import urllib.request

HOST = "127.0.0.1"
MAX_CONNS = 512


def body(model, stream=False):
    b = {"model": model, "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]}
    if stream:
        b["stream"] = True
    return json.dumps(b, separators=(",", ":")).encode()


def request(path, payload):
    return (b"POST " + path.encode() + b" HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\n"
            b"x-api-key: test-key\r\nanthropic-version: 2023-06-01\r\ncontent-length: %d\r\n\r\n" % len(payload)
            + payload)


async def exchange(reader, writer, req, on_data=None):
    """Sends one request, reads its answer; returns (status, keep_alive). on_data(bytes) per body read."""
    writer.write(req)
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length, chunked, close = None, False, False
    for line in lines[1:]:
        k, _, v = line.partition(b":")
        k, v = k.strip().lower(), v.strip().lower()
        if k == b"content-length":
            length = int(v)
        elif k == b"transfer-encoding" and b"chunked" in v:
            chunked = True
        elif k == b"connection" and v == b"close":
            close = True
    if chunked:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            data = await reader.readexactly(size + 2)
            if size == 0:
                break
            if on_data:
                on_data(data[:-2])
    elif length is not None:
        data = await reader.readexactly(length)
        if on_data and data:
            on_data(data)
    else:
        while True:
            data = await reader.read(65536)
            if not data:
                break
            if on_data:
                on_data(data)
        close = True
    return status, not close


class Pool:
    def __init__(self, port):
        self.port, self.idle, self.open = port, [], 0
        self.freed = asyncio.Condition()

    async def get(self):
        async with self.freed:
            while not self.idle and self.open >= MAX_CONNS:
                await self.freed.wait()
            if self.idle:
                return self.idle.pop()
            self.open += 1
        try:
            return await asyncio.open_connection(HOST, self.port)
        except OSError:
            async with self.freed:
                self.open -= 1
                self.freed.notify()
            raise

    async def put(self, conn, reuse):
        async with self.freed:
            if reuse:
                self.idle.append(conn)
            else:
                conn[1].close()
                self.open -= 1
            self.freed.notify()


async def call(pool, req, timeout=60):
    try:
        conn = await pool.get()
    except OSError:
        return 0
    try:
        status, keep = await asyncio.wait_for(exchange(*conn, req), timeout)
    except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
        await pool.put(conn, False)
        return 0
    await pool.put(conn, keep)
    return status


def pct(values, p):
    if not values:
        return None
    v = sorted(values)
    return round(v[min(len(v) - 1, int(p / 100 * len(v)))], 3)


async def open_loop(port, path, model, rate, secs, on_start=None):
    """Calls at `rate` for `secs`; returns [(due, done, status)] with monotonic times."""
    pool, results, tasks = Pool(port), [], []
    req = request(path, body(model))

    async def one(due):
        status = await call(pool, req)
        results.append((due, time.monotonic(), status))

    t0 = time.monotonic()
    if on_start:
        on_start(t0)
    for i in range(int(rate * secs)):
        due = t0 + i / rate
        delay = due - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    for conn in pool.idle:
        conn[1].close()
    return t0, results


def statuses(results):
    mix = {}
    for r in results:
        mix[str(r[2])] = mix.get(str(r[2]), 0) + 1
    return dict(sorted(mix.items()))


async def rate_mode(port, path, model, rate, secs):
    _, results = await open_loop(port, path, model, float(rate), float(secs))
    lat = [(done - due) * 1000 for due, done, s in results if s == 200]
    return {"sent": len(results), "ok": len(lat), "statuses": statuses(results),
            "p50": pct(lat, 50), "p99": pct(lat, 99)}


async def stream_mode(port, path, model, secs, conc):
    req = request(path, body(model, stream=True))
    ttfb, gaps, done, failed = [], [], [0], [0]
    end = time.monotonic() + float(secs)

    async def worker():
        conn = None
        while time.monotonic() < end:
            if conn is None:
                conn = await asyncio.open_connection(HOST, port)
            buf, times = [b""], []
            started = time.monotonic()

            def on_data(data):
                now = time.monotonic()
                buf[0] += data
                while b"\n\n" in buf[0]:
                    event, buf[0] = buf[0].split(b"\n\n", 1)
                    times.append((now, b"content_block_delta" in event))

            try:
                status, keep = await asyncio.wait_for(exchange(*conn, req, on_data), 60)
            except (OSError, asyncio.TimeoutError, asyncio.IncompleteReadError, ValueError, IndexError):
                status, keep = 0, False
            if status == 200 and times:
                done[0] += 1
                ttfb.append((times[0][0] - started) * 1000)
                deltas = [t for t, is_delta in times if is_delta]
                gaps.extend((b - a) * 1000 for a, b in zip(deltas, deltas[1:]))
            else:
                failed[0] += 1
            if not keep:
                conn[1].close()
                conn = None
        if conn:
            conn[1].close()

    await asyncio.gather(*(worker() for _ in range(int(conc))))
    return {"streams": done[0], "failed": failed[0], "ttfb_p50": pct(ttfb, 50), "ttfb_p99": pct(ttfb, 99),
            "gap_p50": pct(gaps, 50), "gap_p99": pct(gaps, 99)}


def control(mockport, what):
    req = urllib.request.Request(f"http://{HOST}:{mockport}/_control/{what}", data=b"", method="POST")
    return json.loads(urllib.request.urlopen(req, timeout=5).read())


async def storm_mode(port, path, model, rate, calm, storm, after, hint, mockport):
    calm, storm = float(calm), float(storm)
    control(mockport, "reset")
    loop = asyncio.get_running_loop()

    def on_start(t0):
        loop.call_at(loop.time() + calm, lambda: control(mockport, f"storm?secs={storm}&hint={int(hint)}"))

    t0, results = await open_loop(port, path, model, float(rate), calm + storm + float(after), on_start)
    stats = control(mockport, "stats")
    s0, s1 = stats["storm_start"], stats["storm_end"]
    in_storm = [r for r in results if s0 <= r[0] < s1]
    # Recovery lag: from the storm's end to the first 200 a client got for a call made after it.
    healed = sorted(done for due, done, s in results if s == 200 and due >= s1)
    return {"sent": len(results), "statuses": statuses(results), "storm_sent": len(in_storm),
            "storm_statuses": statuses(in_storm), "reached_provider": stats["total"],
            "reached_in_storm": stats["limited"],
            "provider_first_ok_after_s": round(stats["ok_after_storm"][0] - s1, 3) if stats["ok_after_storm"] else None,
            "recovery_lag_s": round(healed[0] - s1, 3) if healed else None}


def main():
    mode, port, path, model, *rest = sys.argv[1:]
    fn = {"rate": rate_mode, "stream": stream_mode, "storm": storm_mode}[mode]
    try:
        from uvloop import run
    except ImportError:
        run = asyncio.run
    print(json.dumps(run(fn(int(port), path, model, *rest))))


main()
