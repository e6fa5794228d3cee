"""Posts NDJSON bodies of 1000 events to /ingest/PIPELINE at RATE events per second for SECONDS
seconds (or until REQUESTS bodies were posted, when given), over one kept-alive connection;
prints `accepted refused` (events in 202 answers, events in other answers).
Usage: outage.py ADDR PIPELINE RATE SECONDS [REQUESTS]"""
import http.client
import sys
import time

addr, pipeline, rate, seconds = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])
requests = int(sys.argv[5]) if len(sys.argv) > 5 else None
events = 1000
body = "".join(
    f'{{"ts":"2025-01-01T00:00:00.{i:06d}Z","level":"info","service":"checkout",'
    f'"msg":"request served","status":200,"seq":{i}}}\n'
    for i in range(events)
).encode()
host, port = addr.rsplit(":", 1)
conn = http.client.HTTPConnection(host, int(port), timeout=30)
headers = {"content-type": "application/x-ndjson"}
interval = events / rate
start = time.monotonic()
sent = accepted = refused = 0
while time.monotonic() - start < seconds and sent != requests:
    conn.request("POST", f"/ingest/{pipeline}", body, headers)
    resp = conn.getresponse()
    resp.read()
    if resp.status == 202:
        accepted += events
    else:
        refused += events
    sent += 1
    pause = start + sent * interval - time.monotonic()
    if pause > 0:
        time.sleep(pause)
print(accepted, refused)
