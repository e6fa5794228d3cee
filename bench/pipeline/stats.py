"""Reads GET /v1/pipelines and prints `accepted delivered dropped pending` of one output."""
import json
import sys
import urllib.request

admin, pipeline, output = sys.argv[1], sys.argv[2], sys.argv[3]
doc = json.load(urllib.request.urlopen(f"http://{admin}/v1/pipelines"))
views = doc.get("pipelines", doc) if isinstance(doc, dict) else doc
for p in views:
    if p["name"] != pipeline:
        continue
    for o in p["outputs"]:
        if o["name"] == output:
            d = o["dropped"]
            print(o["accepted"], o["delivered"], d["total"], o["pending"], o["sampled_out"])
            sys.exit(0)
sys.exit(f"no {pipeline}/{output} in {doc}")
