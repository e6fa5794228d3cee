-- wrk script: POST one NDJSON body of EVENTS events (default 1000) to /ingest/$PIPELINE.
local n = tonumber(os.getenv("EVENTS") or "1000")
local lines = {}
for i = 1, n do
    lines[i] = string.format(
        '{"ts":"2025-01-01T00:00:00.%06dZ","level":"info","service":"checkout","msg":"request served","status":200,"seq":%d}',
        i, i)
end
wrk.method = "POST"
wrk.path = "/ingest/" .. (os.getenv("PIPELINE") or "bh")
wrk.body = table.concat(lines, "\n") .. "\n"
wrk.headers["content-type"] = "application/x-ndjson"
