"""Posts N NDJSON bodies of EVENTS events (the bench's event, as ingest.lua builds it) to
http://ADDR/ingest/PIPELINE over one keep-alive connection; prints `accepted refused`."""
import http.client
import sys

addr, pipeline, n, events = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
host, port = addr.split(":")
body = "".join(
    '{"ts":"2025-01-01T00:00:00.%06dZ","level":"info","service":"checkout","msg":"request served","status":200,"seq":%d}\n'
    % (i, i)
    for i in range(1, events + 1)
).encode()
conn = http.client.HTTPConnection(host, int(port))
accepted = refused = 0
for _ in range(n):
    conn.request("POST", f"/ingest/{pipeline}", body, {"content-type": "application/x-ndjson"})
    resp = conn.getresponse()
    resp.read()
    if resp.status == 202:
        accepted += events
    else:
        refused += events
print(accepted, refused)
