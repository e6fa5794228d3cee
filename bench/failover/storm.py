"""A 429 storm on one target, end to end: two mock Anthropic upstreams (`a` storms, `b` stays
healthy), a Seawall gateway over them, and an open-loop client at RATE requests per second.

Timeline: CALM seconds of calm, STORM seconds in which `a` answers every request with
`429` and `retry-after: HINT`, then AFTER seconds of calm again. With TARGETS=1 the provider has
`a` only (what the client gets without failover); with 2 it has `a` and `b` (weights 1:1).

Prints one JSON object: requests sent, client successes, requests that reached `a` during the
storm, upstream attempts beyond the client's (failover's extra load) against what the retry
budget allows, the recovery lag (storm end to the first 200 `a` served), and Seawall's CPU
seconds per 1000 requests.

Usage: storm.py SEAWALL_BINARY WORKDIR TARGETS [RATE=50] [CALM=5] [STORM=10] [AFTER=10] [HINT=5]
"""
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
import urllib.request

BIN, WORK, TARGETS = sys.argv[1], sys.argv[2], int(sys.argv[3])
RATE, CALM, STORM, AFTER, HINT = (float(a) for a in (sys.argv[4:9] + ["50", "5", "10", "10", "5"][len(sys.argv[4:9]):]))
BODY = b'{"model":"claude-x","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}'
OK = b'{"id":"msg_1","type":"message","role":"assistant","content":[{"type":"text","text":"ok"}]}'
LIMITED = b'{"type":"error","error":{"type":"rate_limit_error","message":"storm"}}'

t0 = 0.0  # set when the client starts; the storm is [t0 + CALM, t0 + CALM + STORM)


def storming(now):
    return t0 and t0 + CALM <= now < t0 + CALM + STORM


class Mock:
    """An HTTP/1.1 upstream with keep-alive; `a` storms, any other name always answers 200."""

    def __init__(self, name):
        self.name = name
        self.ok_at = []  # monotonic times of its 200s
        self.limited = 0  # 429s answered (requests that reached it during the storm)
        self.total = 0

    async def serve(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":", 1)[1])
                if length:
                    await reader.readexactly(length)
                self.total += 1
                now = time.monotonic()
                if self.name == "a" and storming(now):
                    self.limited += 1
                    status, extra, body = b"429 Too Many Requests", b"retry-after: %d\r\n" % HINT, LIMITED
                else:
                    self.ok_at.append(now)
                    status, extra, body = b"200 OK", b"", OK
                writer.write(b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\n" + extra
                             + b"content-length: %d\r\n\r\n" % len(body) + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            pass
        finally:
            writer.close()


async def request(port, results, sent_at):
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"POST /p/v1/messages HTTP/1.1\r\nhost: gw\r\ncontent-type: application/json\r\n"
                     b"connection: close\r\ncontent-length: %d\r\n\r\n" % len(BODY) + BODY)
        await writer.drain()
        answer = await asyncio.wait_for(reader.read(-1), 30)
        writer.close()
        head = answer.split(b"\r\n\r\n", 1)[0].decode("latin-1").split("\r\n")
        status = int(head[0].split()[1])
        target = next((l.split(":", 1)[1].strip() for l in head[1:] if l.lower().startswith("x-seawall-target:")), "")
    except (OSError, asyncio.TimeoutError, IndexError, ValueError):
        status, target = 0, ""
    results.append((sent_at, status, target))


def cpu_seconds(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def metric(text, prefix):
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(prefix))


async def main():
    global t0
    mocks = {name: Mock(name) for name in "ab"[:TARGETS]}
    ports = {}
    for name, mock in mocks.items():
        server = await asyncio.start_server(mock.serve, "127.0.0.1", 0)
        ports[name] = server.sockets[0].getsockname()[1]
    gw, admin = free_port(), free_port()
    targets = ", ".join(f"{{ name: {n}, base_url: 'http://127.0.0.1:{p}', api_key_env: KEY_{n} }}" for n, p in ports.items())
    config = os.path.join(WORK, f"storm-{TARGETS}.yaml")
    with open(config, "w") as f:
        f.write(f"""server: {{ listen: 127.0.0.1:{gw}, workers: 1 }}
admin: {{ listen: 127.0.0.1:{admin} }}
providers:
  - name: p
    kind: anthropic
    targets: [{targets}]
""")
    env = dict(os.environ, SEAWALL_LOG="warn", TOKIO_WORKER_THREADS="1", KEY_a="key-a", KEY_b="key-b")
    log = open(os.path.join(WORK, f"storm-{TARGETS}.log"), "w")
    proc = subprocess.Popen([BIN, "run", "-c", config], env=env, stdout=log, stderr=log)
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{admin}/readyz", timeout=1).read()
                break
            except OSError:
                await asyncio.sleep(0.1)
        cpu_before = cpu_seconds(proc.pid)
        results, tasks = [], []
        t0 = time.monotonic()
        total = int(RATE * (CALM + STORM + AFTER))
        for i in range(total):
            at = t0 + i / RATE
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            tasks.append(asyncio.create_task(request(gw, results, at)))
        await asyncio.gather(*tasks)
        cpu = cpu_seconds(proc.pid) - cpu_before
        metrics = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    finally:
        proc.terminate()
        proc.wait(10)
    storm_start, storm_end = t0 + CALM, t0 + CALM + STORM
    in_storm = [r for r in results if storm_start <= r[0] < storm_end]
    a = mocks["a"]
    recovered = [t for t in a.ok_at if t >= storm_end]
    upstream = sum(m.total for m in mocks.values())
    # The budget: `ratio` of first attempts plus `min_per_second` for every second (the defaults).
    allowed = 0.2 * len(results) + 5 * (CALM + STORM + AFTER)
    print(json.dumps({
        "targets": TARGETS,
        "sent": len(results),
        "succeeded": sum(1 for r in results if r[1] == 200),
        "storm_sent": len(in_storm),
        "storm_succeeded": sum(1 for r in in_storm if r[1] == 200),
        "statuses": {str(s): sum(1 for r in results if r[1] == s) for s in sorted({r[1] for r in results})},
        "reached_a_in_storm": a.limited,
        "upstream_attempts": upstream,
        "extra_attempts": upstream - len(results),
        "budget_allows": allowed,
        "failover_attempts_metric": metric(metrics, "seawall_failover_attempts_total{"),
        "budget_exhausted_metric": metric(metrics, "seawall_retry_budget_exhausted_total{"),
        "recovery_lag_s": round(recovered[0] - storm_end, 3) if recovered else None,
        "cpu_s_per_1000": round(cpu * 1000 / max(1, len(results)), 4),
    }))


asyncio.run(main())
