"""The timed half of the mock provider (bench/peers.sh): an Anthropic Messages API upstream on
HTTP/1.1 keep-alive. The static half is an nginx answering the JSON body of a non-streaming call
(so that the mock never caps the proxies' throughput); it sends `/live/...` here, path stripped.

POST /v1/messages with `"stream": true` -> SSE in Anthropic's event sequence: message_start,
content_block_start, CHUNKS content_block_delta events SPACING_MS apart, content_block_stop,
message_delta, message_stop (chunked transfer encoding, one event per chunk). Without it -> the
same JSON body the nginx half answers.

Control (not through the proxies): POST /_control/storm?secs=S&hint=H starts a storm now: for S
seconds every call is answered `429` with `retry-after: H` and Anthropic's rate_limit_error body.
GET /_control/stats -> {"total", "limited", "storm_start", "storm_end", "ok_after_storm"
(monotonic times of the 200s answered after the storm, first 5)}; POST /_control/reset zeroes them.

Usage: mock.py PORT [CHUNKS=8] [SPACING_MS=20]
"""
import asyncio
import json
import sys
import time

PORT = int(sys.argv[1])
CHUNKS = int(sys.argv[2]) if len(sys.argv) > 2 else 8
SPACING = (float(sys.argv[3]) if len(sys.argv) > 3 else 20.0) / 1000

OK = (b'{"id":"msg_01","type":"message","role":"assistant","model":"claude-x","content":[{"type":"text",'
      b'"text":"ok"}],"stop_reason":"end_turn","stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":1}}')
LIMITED = b'{"type":"error","error":{"type":"rate_limit_error","message":"storm"}}'


def sse(event, data):
    return b"event: " + event + b"\ndata: " + json.dumps(data, separators=(",", ":")).encode() + b"\n\n"


START = [
    sse(b"message_start", {"type": "message_start", "message": {
        "id": "msg_01", "type": "message", "role": "assistant", "model": "claude-live", "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 5, "output_tokens": 1}}}),
    sse(b"content_block_start", {"type": "content_block_start", "index": 0,
                                  "content_block": {"type": "text", "text": ""}}),
]
DELTA = sse(b"content_block_delta", {"type": "content_block_delta", "index": 0,
                                      "delta": {"type": "text_delta", "text": "tok "}})
END = [
    sse(b"content_block_stop", {"type": "content_block_stop", "index": 0}),
    sse(b"message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                           "usage": {"output_tokens": CHUNKS}}),
    sse(b"message_stop", {"type": "message_stop"}),
]


def chunk(data):
    return b"%x\r\n" % len(data) + data + b"\r\n"


class State:
    total = 0
    limited = 0
    storm = (0.0, 0.0)
    hint = 1
    ok_after = []


def answer(status, body, extra=b"", ctype=b"application/json"):
    return (b"HTTP/1.1 " + status + b"\r\ncontent-type: " + ctype + b"\r\n" + extra
            + b"content-length: %d\r\n\r\n" % len(body) + body)


async def read_body(reader, head):
    length, chunked = 0, False
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        k = k.strip().lower()
        if k == b"content-length":
            length = int(v)
        elif k == b"transfer-encoding" and b"chunked" in v.lower():
            chunked = True
    if chunked:
        body = b""
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            body += await reader.readexactly(size + 2)
            if size == 0:
                return body
    return await reader.readexactly(length) if length else b""


async def serve(reader, writer):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            body = await read_body(reader, head)
            target = head.split(b" ", 2)[1].decode()
            now = time.monotonic()
            if target.startswith("/_control/"):
                if target.startswith("/_control/storm"):
                    q = dict(p.split("=") for p in target.split("?", 1)[1].split("&"))
                    State.storm = (now, now + float(q["secs"]))
                    State.hint = int(q["hint"])
                elif target.startswith("/_control/reset"):
                    State.total = State.limited = 0
                    State.storm = (0.0, 0.0)
                    State.ok_after = []
                stats = {"total": State.total, "limited": State.limited, "storm_start": State.storm[0],
                         "storm_end": State.storm[1], "ok_after_storm": State.ok_after[:5]}
                writer.write(answer(b"200 OK", json.dumps(stats).encode()))
                await writer.drain()
                continue
            State.total += 1
            if State.storm[0] <= now < State.storm[1]:
                State.limited += 1
                writer.write(answer(b"429 Too Many Requests", LIMITED, b"retry-after: %d\r\n" % State.hint))
                await writer.drain()
                continue
            if State.storm[1] and now >= State.storm[1] and len(State.ok_after) < 5:
                State.ok_after.append(now)
            if b'"stream":true' in body.replace(b" ", b""):
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
                             b"transfer-encoding: chunked\r\n\r\n" + b"".join(chunk(e) for e in START))
                await writer.drain()
                for _ in range(CHUNKS):
                    await asyncio.sleep(SPACING)
                    writer.write(chunk(DELTA))
                    await writer.drain()
                writer.write(b"".join(chunk(e) for e in END) + b"0\r\n\r\n")
                await writer.drain()
            else:
                writer.write(answer(b"200 OK", OK))
                await writer.drain()
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError, IndexError):
        pass
    finally:
        writer.close()


async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", PORT, backlog=1024)
    async with server:
        await server.serve_forever()


try:
    from uvloop import run
except ImportError:
    run = asyncio.run
run(main())
