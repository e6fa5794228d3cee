"""Three Seawall replicas under one storm, with the cluster off or on.

A mock provider (generic kind) answers 200, then 503 for STORM seconds, then 200 again. The
client spreads RATE requests per second over the three replicas in turn, as a load balancer
would. Breakers: 5 failures in a row trip, open 2 s (no backoff, no jitter), one probe.

Prints one JSON object: failures that reached the provider before every replica was open, the
probes that reached it while the storm lasted and in how many rounds, the recovery lag (storm
end to the provider's first 200), and with the cluster on, the propagation delay of 200 trips
(p50/p99, from the replicas' own `seawall_cluster_propagation_seconds`).

Usage: fleet.py SEAWALL WORKDIR off|on REDIS_URL [RATE=150] [CALM=3] [STORM=10] [AFTER=5] [TRIPS=200]
"""
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime

BIN, WORK, MODE, REDIS = sys.argv[1:5]
RATE, CALM, STORM, AFTER, TRIPS = (float(a) for a in (sys.argv[5:10] + ["150", "3", "10", "5", "200"][len(sys.argv[5:10]):]))
OPEN_S, THRESHOLD = 2.0, 5
storm = [0.0, 0.0]  # wall-clock start and end, set when the load starts


class Upstream:
    """Keep-alive HTTP/1.1; 503 during the storm, 429 with a long hint on /v1/trip/*."""

    def __init__(self):
        self.seen = []  # (wall time, status)

    async def serve(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                target = head.split(b" ", 2)[1]
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                now = time.time()
                extra = b""
                if target.startswith(b"/v1/trip/"):
                    status, extra = 429, b"retry-after: 60\r\n"
                elif storm[0] <= now < storm[1]:
                    status = 503
                else:
                    status = 200
                if not target.startswith(b"/v1/trip/"):
                    self.seen.append((now, status))
                body = b'{"ok":true}' if status == 200 else b'{"error":"overloaded"}'
                writer.write(b"HTTP/1.1 %d X\r\ncontent-type: application/json\r\n%scontent-length: %d\r\n\r\n%s"
                             % (status, extra, len(body), body))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url):
    with urllib.request.urlopen(url, timeout=5) as r:
        return r.read().decode()


def endpoint_name(i):
    """A path segment of letters only, so each trip has a breaker of its own (no `{id}`)."""
    name = ""
    while True:
        name += chr(ord("a") + i % 26)
        i //= 26
        if not i:
            return name


async def client(port, results, sent_at, path=b"/p/v1/messages"):
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST " + path + b" HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
                     b"connection: close\r\ncontent-length: 2\r\n\r\n{}")
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(-1), 30)
        writer.close()
        status = int(answer.split(b" ", 2)[1])
    except (OSError, asyncio.TimeoutError, IndexError, ValueError):
        status = 0
    results.append((sent_at, status))


def buckets(text):
    """The cumulative buckets of seawall_cluster_propagation_seconds in one exposition."""
    out = {}
    for line in text.splitlines():
        if line.startswith("seawall_cluster_propagation_seconds_bucket{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            key = float("inf") if le == "+Inf" else float(le)
            out[key] = out.get(key, 0) + float(line.rsplit(" ", 1)[1])
    return out


def merged_quantile(texts, q):
    """histogram_quantile (linear within a bucket) over the buckets of every exposition."""
    total = {}
    for t in texts:
        for le, n in buckets(t).items():
            total[le] = total.get(le, 0) + n
    bounds = sorted(total)
    count = total[float("inf")] if bounds else 0
    if not count:
        return None, 0
    rank, prev_le, prev_n = q * count, 0.0, 0.0
    for le in bounds:
        if total[le] >= rank:
            if le == float("inf"):
                return prev_le, count
            return prev_le + (le - prev_le) * (rank - prev_n) / max(total[le] - prev_n, 1e-9), count
        prev_le, prev_n = le, total[le]
    return None, count


def open_times(admin):
    """Wall times at which this replica's /v1/messages breaker opened (from /v1/transitions)."""
    out = []
    for t in json.loads(get(f"http://127.0.0.1:{admin}/v1/transitions")):
        if t["endpoint"] == "/v1/messages" and t["to"] == "open":
            out.append(datetime.fromisoformat(t["at"].replace("Z", "+00:00")).timestamp())
    return sorted(out)


async def main():
    upstream = Upstream()
    server = await asyncio.start_server(upstream.serve, "127.0.0.1", 0)
    up = server.sockets[0].getsockname()[1]
    prefix = f"bench{os.getpid()}{int(time.time())}"
    replicas = []
    for i in range(3):
        gw, admin = free_port(), free_port()
        cluster = (f"cluster: {{ redis_url_env: SEAWALL_REDIS_URL, key_prefix: {prefix}, node_id: r{i} }}\n"
                   if MODE == "on" else "")
        config = os.path.join(WORK, f"fleet-{MODE}-{i}.yaml")
        with open(config, "w") as f:
            f.write(f"""server: {{ listen: 127.0.0.1:{gw}, workers: 1 }}
admin: {{ listen: 127.0.0.1:{admin} }}
providers:
  - name: p
    kind: generic
    base_url: http://127.0.0.1:{up}
    circuit_breaker: {{ failure_threshold: {THRESHOLD}, open_timeout: {OPEN_S}s, open_timeout_max: {OPEN_S}s, jitter: 0, half_open_max_calls: 1 }}
{cluster}""")
        env = dict(os.environ, SEAWALL_LOG="warn", TOKIO_WORKER_THREADS="1", SEAWALL_REDIS_URL=REDIS)
        log = open(os.path.join(WORK, f"fleet-{MODE}-{i}.log"), "w")
        proc = subprocess.Popen([BIN, "run", "-c", config], env=env, stdout=log, stderr=log)
        replicas.append((proc, gw, admin))
    try:
        for _, _, admin in replicas:
            for _ in range(100):
                try:
                    get(f"http://127.0.0.1:{admin}/readyz")
                    break
                except OSError:
                    await asyncio.sleep(0.1)
        results, tasks = [], []
        t0 = time.time()
        storm[0], storm[1] = t0 + CALM, t0 + CALM + STORM
        total = int(RATE * (CALM + STORM + AFTER))
        start = time.monotonic()
        for i in range(total):
            await asyncio.sleep(max(0.0, start + i / RATE - time.monotonic()))
            tasks.append(asyncio.create_task(client(replicas[i % 3][1], results, time.time())))
        await asyncio.gather(*tasks)
        opened = [open_times(admin) for _, _, admin in replicas]
        fleet_open = max(o[0] for o in opened) if all(opened) else None
        in_storm = [(t, s) for t, s in upstream.seen if storm[0] <= t < storm[1]]
        before = sum(1 for t, s in in_storm if s == 503 and fleet_open and t <= fleet_open + 0.0005)
        probes = sorted(t for t, s in in_storm if fleet_open and t > fleet_open + 0.0005)
        rounds = 0
        last = None
        for t in probes:
            if last is None or t - last > OPEN_S / 2:
                rounds += 1
            last = t
        recovered = [t for t, s in upstream.seen if t >= storm[1] and s == 200]
        result = {
            "mode": MODE,
            "requests": len(results),
            "failures_before_fleet_open": before,
            "fleet_open_after_storm_start_ms": round((fleet_open - storm[0]) * 1000, 1) if fleet_open else None,
            "probes_in_storm": len(probes),
            "rounds": rounds,
            "probes_per_round": round(len(probes) / rounds, 2) if rounds else 0,
            "recovery_lag_s": round(recovered[0] - storm[1], 3) if recovered else None,
        }
        if MODE == "on":
            first_gw = replicas[0][1]
            trips = []
            for i in range(int(TRIPS)):
                path = f"/p/v1/trip/{endpoint_name(i)}".encode()
                await client(first_gw, trips, time.time(), path)
                await asyncio.sleep(0.01)
            result["trips_answered_429"] = sum(1 for _, s in trips if s == 429)
            await asyncio.sleep(0.5)
            texts = [get(f"http://127.0.0.1:{admin}/metrics") for _, _, admin in replicas[1:]]
            p50, n = merged_quantile(texts, 0.5)
            p99, _ = merged_quantile(texts, 0.99)
            result.update({"propagation_samples": n,
                           "propagation_p50_ms": round(p50 * 1000, 3) if p50 is not None else None,
                           "propagation_p99_ms": round(p99 * 1000, 3) if p99 is not None else None})
        print(json.dumps(result))
    finally:
        for proc, _, _ in replicas:
            proc.terminate()
            proc.wait(10)


asyncio.run(main())
