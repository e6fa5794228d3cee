"""The rounds of bench/peers.sh and its report. Run by that script, after it started the mock and
every proxy; see there for what is measured.

Usage: run.py WORK ROUNDS SECS RATE BOUND_MS CONC STORM_RATE VERSIONS name=port:prefix...
"""
import json
import os
import statistics
import subprocess
import sys
import time

if sys.argv[1] == "--report":  # run.py --report WORK/raw.json: the tables again, from a run's raw figures
    ARGS = json.load(open(sys.argv[2]))["args"]
else:
    ARGS = sys.argv[1:9]
WORK, ROUNDS, SECS, RATE, BOUND, CONC, STORM_RATE, VERSIONS = ARGS
ROUNDS, SECS, BOUND, CONC, STORM_RATE = int(ROUNDS), float(SECS), float(BOUND), int(CONC), float(STORM_RATE)
LOW, HIGH = (float(x) for x in RATE.split(","))
TARGETS = {}
for arg in sys.argv[9:]:
    name, rest = arg.split("=", 1)
    port, prefix = rest.split(":", 1)
    TARGETS[name] = (int(port), prefix)
PIDS = {} if sys.argv[1] == "--report" else dict(line.split() for line in open(os.path.join(WORK, "pids")))
HERE = os.path.dirname(os.path.abspath(__file__))
DRIVE = [sys.executable, os.path.join(HERE, "drive.py")]
SWEEP = (4, 16, 64)
SWEEP_SECS = int(os.environ.get("PEERS_SWEEP_SECS", "3"))
# The storm's timeline, seconds: calm, storm, after, retry-after hint (PEERS_STORM="3,10,7,5").
CALM, STORM, AFTER, HINT = (int(x) for x in os.environ.get("PEERS_STORM", "3,10,7,5").split(","))
LIVE_PORT = int(TARGETS.get("direct", (0,))[0]) + 1  # mock.py's own port, for its control calls
TICK = os.sysconf("SC_CLK_TCK")


def paths(name):
    """(json path, json model, live path, live model) for a target."""
    port, prefix = TARGETS[name]
    if name == "litellm":  # LiteLLM routes by model, not by path
        return "/v1/messages", "claude-x", "/v1/messages", "claude-live"
    return prefix + "/v1/messages", "claude-x", prefix + "/live/v1/messages", "claude-live"


def tree(root):
    """root and all its descendants."""
    children = {}
    for p in os.listdir("/proc"):
        if p.isdigit():
            try:
                ppid = int(open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[1])
            except OSError:
                continue
            children.setdefault(ppid, []).append(int(p))
    out, todo = [], [int(root)]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(name):
    if name == "direct":
        return 0.0
    total = 0
    for p in tree(PIDS[name]):
        try:
            f = open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()
            total += int(f[11]) + int(f[12])
        except OSError:
            pass
    return total / TICK


def peak_rss_mib(name):
    total = 0
    for p in tree(PIDS[name]):
        try:
            for line in open(f"/proc/{p}/status"):
                if line.startswith("VmHWM:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


def lua(model):
    path = os.path.join(WORK, f"post-{model}.lua")
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write('wrk.method = "POST"\n'
                    f'wrk.body = \'{{"model":"{model}","max_tokens":16,"messages":[{{"role":"user","content":"hi"}}]}}\'\n'
                    'wrk.headers["content-type"] = "application/json"\n'
                    'wrk.headers["x-api-key"] = "test-key"\n'
                    'wrk.headers["anthropic-version"] = "2023-06-01"\n')
    return path


def ms(v):
    for unit, f in (("us", 0.001), ("ms", 1.0), ("s", 1000.0)):
        if v.endswith(unit):
            return float(v[: -len(unit)]) * f
    return float(v)


def wrk(name, conns, secs):
    port, _ = TARGETS[name]
    path, model, _, _ = paths(name)
    out = subprocess.run(["wrk", f"-t{min(2, conns)}", f"-c{conns}", f"-d{int(secs)}s", "--latency", "-s", lua(model),
                          f"http://127.0.0.1:{port}{path}"], capture_output=True, text=True, timeout=secs + 60).stdout
    r = {"rps": 0.0, "p50": None, "p99": None, "errors": 0, "calls": 0}
    for line in out.splitlines():
        f = line.split()
        if "requests in" in line:
            r["calls"] = int(f[0])
        elif line.startswith("Requests/sec"):
            r["rps"] = float(f[1])
        elif f[:1] == ["50%"]:
            r["p50"] = ms(f[1])
        elif f[:1] == ["99%"]:
            r["p99"] = ms(f[1])
        elif "Non-2xx" in line or "Socket errors" in line:
            r["errors"] += sum(int(x.strip(",")) for x in f if x.strip(",").isdigit())
    return r


def drive(*args, timeout=300):
    out = subprocess.run(DRIVE + [str(a) for a in args], capture_output=True, text=True, timeout=timeout)
    if out.returncode:
        sys.stderr.write(out.stderr)
        return {}
    return json.loads(out.stdout)


def one_round(name):
    port, _ = TARGETS[name]
    jpath, jmodel, lpath, lmodel = paths(name)
    r = {}
    before = cpu_seconds(name)
    c1 = wrk(name, 1, SECS)
    r["c1_p50"], r["c1_p99"] = c1["p50"], c1["p99"]
    best = (c1["rps"], 1) if c1["p99"] is not None and c1["p99"] <= BOUND and not c1["errors"] else (0.0, 0)
    calls, top = c1["calls"], c1["rps"]
    r["sweep"] = [[1, c1["rps"], c1["p99"], c1["errors"]]]  # [connections, calls/s, p99 ms, errors] per step
    for c in SWEEP:
        s = wrk(name, c, SWEEP_SECS)
        r["sweep"].append([c, s["rps"], s["p99"], s["errors"]])
        calls, top = calls + s["calls"], max(top, s["rps"])
        if s["p99"] is not None and s["p99"] <= BOUND and not s["errors"] and s["rps"] > best[0]:
            best = (s["rps"], c)
    # The proxy's CPU over the closed-loop runs (concurrency 1 to 64), per 1000 calls answered.
    r["cpu_per_1000"] = (cpu_seconds(name) - before) * 1000 / max(1, calls)
    r["bound_rps"], r["bound_conns"], r["top_rps"] = best[0], best[1], top
    for key, rate in (("low", LOW), ("high", HIGH)):
        if top < 1.5 * rate:  # it cannot sustain this rate: it would only measure a queue growing
            r[f"{key}_p50"] = r[f"{key}_p99"] = None
            r[f"{key}_ok"] = r[f"{key}_sent"] = 0
            continue
        fixed = drive("rate", port, jpath, jmodel, rate, SECS)
        r[f"{key}_p50"], r[f"{key}_p99"] = fixed.get("p50"), fixed.get("p99")
        r[f"{key}_ok"], r[f"{key}_sent"] = fixed.get("ok", 0), fixed.get("sent", 0)
    st = drive("stream", port, lpath, lmodel, SECS, CONC)
    r.update({k: st.get(k) for k in ("ttfb_p50", "ttfb_p99", "gap_p50", "gap_p99", "streams", "failed")})
    return r


def main():
    names = list(TARGETS)
    rounds = []
    t_start = time.time()
    for i in range(ROUNDS):
        order = names[i % len(names):] + names[: i % len(names)]
        res = {}
        for name in order:
            res[name] = one_round(name)
            print(f"round {i + 1} {name}: {json.dumps(res[name])}", file=sys.stderr, flush=True)
        rounds.append(res)
    storms = {}
    for name in names:
        port, _ = TARGETS[name]
        _, _, lpath, lmodel = paths(name)
        storms[name] = drive("storm", port, lpath, lmodel, STORM_RATE, CALM, STORM, AFTER, HINT, LIVE_PORT)
        print(f"storm {name}: {json.dumps(storms[name])}", file=sys.stderr, flush=True)
        time.sleep(HINT + 1)  # the storm's breaker (or cooldown) must not reach into the next one
    rss = {n: peak_rss_mib(n) for n in names if n != "direct"}
    raw = {"rounds": rounds, "storms": storms, "rss": rss, "args": sys.argv[1:9], "secs": time.time() - t_start}
    with open(os.path.join(WORK, "raw.json"), "w") as f:
        json.dump(raw, f)
    sys.stderr.write(json.dumps(raw) + "\n")
    report(raw)


def report(raw):
    rounds, storms, rss = raw["rounds"], raw["storms"], raw["rss"]
    names = list(rounds[0]) if rounds else list(raw["storms"])
    peers = [n for n in names if n not in ("direct", "seawall")]
    if not rounds:  # bench/peers.sh 0: the storm alone
        storm_table(raw["storms"], names)
        return

    def added(key, name):
        """Per-round values of key for name minus direct's in the same round."""
        return [r[name][key] - r["direct"][key] for r in rounds
                if r[name].get(key) is not None and r["direct"].get(key) is not None]

    def plain(key, name):
        return [r[name][key] for r in rounds if r[name].get(key) is not None]

    def cell(vals, fmt):
        if not vals:
            return "–"
        m = statistics.median(vals)
        if len(vals) == 1:
            return fmt.format(m)
        return (fmt + " ({}–{})").format(m, fmt.format(min(vals)), fmt.format(max(vals)))

    rows = [  # label, values(name), format, lower is better
        ("added latency p50, concurrency 1, ms", lambda n: added("c1_p50", n), "{:.3f}", True),
        ("added latency p99, concurrency 1, ms", lambda n: added("c1_p99", n), "{:.3f}", True),
        (f"added latency p50 at {LOW:.0f} calls/s (open loop), ms", lambda n: added("low_p50", n), "{:.3f}", True),
        (f"added latency p99 at {LOW:.0f} calls/s (open loop), ms", lambda n: added("low_p99", n), "{:.3f}", True),
        (f"added latency p50 at {HIGH:.0f} calls/s (open loop), ms", lambda n: added("high_p50", n), "{:.3f}", True),
        (f"added latency p99 at {HIGH:.0f} calls/s (open loop), ms", lambda n: added("high_p99", n), "{:.3f}", True),
        (f"calls/s with p99 ≤ {BOUND:.0f} ms (best of 1/4/16/64 connections)", lambda n: plain("bound_rps", n), "{:.0f}", False),
        (f"streaming: added time to first event p50, ms ({CONC} streams)", lambda n: added("ttfb_p50", n), "{:.3f}", True),
        ("streaming: added time to first event p99, ms", lambda n: added("ttfb_p99", n), "{:.3f}", True),
        ("streaming: added inter-chunk gap p50, ms (mock spaces them 20 ms)", lambda n: added("gap_p50", n), "{:.3f}", True),
        ("streaming: added inter-chunk gap p99, ms", lambda n: added("gap_p99", n), "{:.3f}", True),
        ("most calls/s at any of 1/4/16/64 connections", lambda n: plain("top_rps", n), "{:.0f}", False),
        ("proxy CPU seconds per 1000 calls (over the 1–64 connection runs)", lambda n: plain("cpu_per_1000", n), "{:.3f}", True),
    ]
    a = raw["args"]
    print(f"\n### Seawall and its peers: {len(rounds)} alternating rounds, {a[2]} s runs, {time.strftime('%Y-%m-%d', time.gmtime())}, "
          f"{os.cpu_count()} cores (shared)\n\n{a[7]}\n")
    print("Cells: median over the rounds (lowest–highest). \"Added\": the target's figure minus the mock's own "
          "(direct) in the same round.\n")
    print("| row | " + " | ".join(names) + " | Seawall vs best peer |")
    print("|---|" + "---:|" * len(names) + "---|")
    for label, fn, fmt, lower in rows:
        vals = {n: fn(n) for n in names}
        meds = {n: statistics.median(v) for n, v in vals.items() if v}
        peer_meds = [meds[n] for n in peers if n in meds]
        verdict = "–"
        if "seawall" in meds and peer_meds:
            best = min(peer_meds) if lower else max(peer_meds)
            who = [n for n in peers if meds.get(n) == best][0]
            ahead = meds["seawall"] <= best if lower else meds["seawall"] >= best
            verdict = f"{'ahead of' if ahead else 'behind'} {who} ({fmt.format(meds['seawall'])} vs {fmt.format(best)})"
        def shown(n):
            if n == "direct" and "CPU" in label:
                return "–"
            if not vals[n] and f"at {HIGH:.0f} calls/s" in label:
                return f"not sustained (at most {statistics.median(plain('top_rps', n)):.0f}/s)"
            return cell(vals[n], fmt)

        print(f"| {label} | " + " | ".join(shown(n) for n in names)
              + f" | {verdict} |")
    print("| peak RSS, MiB (VmHWM summed over the proxy's processes) | – | "
          + " | ".join(f"{rss[n]:.1f}" for n in names if n != "direct") + " | "
          + ("ahead" if rss.get("seawall", 1e9) <= min(rss[n] for n in peers) else "behind") + " |")
    print("\nPer-round ratios, Seawall / peer, of figures from the same round (median, and the "
          "rounds in which Seawall was ahead; a drift in the host's load moves both sides of a ratio alike):\n")
    for key, label, higher in (("top_rps", "most calls/s", True), ("bound_rps", f"calls/s at p99 ≤ {BOUND:.0f} ms", True),
                               ("cpu_per_1000", "CPU per 1000 calls", False)):
        parts = []
        for n in peers:
            ratios = [r["seawall"][key] / r[n][key] for r in rounds if r[n].get(key) and r["seawall"].get(key)]
            if ratios:
                ahead = sum(1 for x in ratios if (x >= 1 if higher else x <= 1))
                parts.append(f"{n} {statistics.median(ratios):.3g}× ({ahead} of {len(ratios)})")
        print(f"- {label}: " + ", ".join(parts))
    storm_table(storms, names)
    print("\nPer round (raw):")
    for i, r in enumerate(rounds):
        print(f"- round {i + 1}: " + "; ".join(
            f"{n} c1 p50 {r[n]['c1_p50']:.3f} / bound {r[n]['bound_rps']:.0f} rps @ {r[n]['bound_conns']}c / "
            f"{HIGH:.0f}/s p99 {r[n]['high_p99']} ({r[n]['high_ok']}/{r[n]['high_sent']} ok)" for n in names))


def storm_table(s, names):
    print(f"\n### 429 storm: {STORM_RATE:.0f} calls/s for {CALM + STORM + AFTER} s; from {CALM} s the provider answers 429 "
          f"with retry-after: {HINT} for {STORM} s, then heals\n")
    print("| target | calls sent (in the storm) | reached the provider in the storm | reached the provider in all | "
          "clients got (all) | clients got (in the storm) | recovery lag, s (client) | provider's first 200 after the storm, s |")
    print("|---|---:|---:|---:|---|---|---:|---:|")
    for n in names:
        r = s.get(n) or {}
        if not r:
            print(f"| {n} | failed | | | | | | |")
            continue
        mix = lambda m: ", ".join(f"{k}: {v}" for k, v in m.items())
        print(f"| {n} | {r['sent']} ({r['storm_sent']}) | {r['reached_in_storm']} | {r['reached_provider']} | "
              f"{mix(r['statuses'])} | {mix(r['storm_statuses'])} | {r['recovery_lag_s']} | {r['provider_first_ok_after_s']} |")


if __name__ == "__main__":
    if sys.argv[1] == "--report":
        report(json.load(open(sys.argv[2])))
    else:
        main()
