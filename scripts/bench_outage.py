#!/usr/bin/env python3
"""Measures what the retry budget (issue 16, item 4) does in a total outage: three
providers that all answer 500, an open-loop load of RATE client requests a second for
SECONDS seconds, and the upstream requests the proxy sent per client request —
without the budget (budget_ratio = 1e9) and with it (the defaults: 0.2, floor 10/s),
each with the default circuit breaker and with the breaker kept from tripping
(failures = 1000000), which isolates the budget.

The counts do not depend on the proxy's speed, so the debug binary measures them as
well as the release one; BIN picks the binary (default: target/release/understudy if
built, else target/debug/understudy).

Usage: scripts/bench_outage.py [RATE] [SECONDS]   (default 100 30)
"""
import concurrent.futures
import http.client
import json
import os
import subprocess
import sys
import tempfile
import time

from bench_replicas import Upstream, free_port

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def binary():
    if os.environ.get("BIN"):
        return os.environ["BIN"]
    for profile in ("release", "debug"):
        path = os.path.join(ROOT, "target", profile, "understudy")
        if os.path.exists(path):
            return path
    sys.exit("no understudy binary: cargo build first")


class Down(Upstream):
    """An OpenAI-kind upstream that answers every request 500, and counts them."""

    def reply(self, model):
        return 500, b'{"error":{"message":"down","type":"server_error"}}', []

    def total(self):
        return self.count("")


def config(port, ups, budget, breaker):
    s = f'[server]\nlisten = "127.0.0.1:{port}"\n'
    s += "[failover]\n"
    s += "budget_ratio = 0.2\nbudget_min_per_s = 10\n" if budget else "budget_ratio = 1e9\n"
    if not breaker:
        s += "[circuit_breaker]\nfailures = 1000000\n"
    names = []
    for i, up in enumerate(ups):
        name = f"p{i}"
        names.append(f'"{name}/m"')
        s += (f'[providers.{name}]\nkind = "openai"\nbase_url = "http://127.0.0.1:{up.port}/v1"\n'
              'api_key_env = "BENCH_KEY"\n')
    s += f'[[routes]]\nmodel = "default"\ntargets = [{", ".join(names)}]\n'
    return s


def chat(port):
    body = json.dumps({"model": "default", "messages": [{"role": "user", "content": "hi"}]})
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
        r = conn.getresponse()
        r.read()
        return r.status, int(r.getheader("x-understudy-attempts") or 0)
    except OSError:
        return 0, 0
    finally:
        conn.close()


def wait_ready(port, proc):
    for _ in range(300):
        if proc.poll() is not None:
            sys.exit("the proxy exited")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
            c.request("GET", "/healthz")
            if c.getresponse().status == 200:
                return
        except OSError:
            time.sleep(0.05)
    sys.exit("the proxy did not come up")


def exhausted(port):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    c.request("GET", "/metrics")
    for line in c.getresponse().read().decode().splitlines():
        if line.startswith('understudy_budget_exhausted_total{route="default"}'):
            return int(float(line.split()[-1]))
    return 0


def run(work, rate, seconds, budget, breaker):
    ups = [Down() for _ in range(3)]
    port = free_port()
    path = os.path.join(work, "proxy.toml")
    with open(path, "w") as f:
        f.write(config(port, ups, budget, breaker))
    env = dict(os.environ, BENCH_KEY="sk-bench", RUST_LOG="warn")
    proc = subprocess.Popen([binary(), "--config", path], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_ready(port, proc)
        n = rate * seconds
        start = time.monotonic()
        futures = []
        with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
            for i in range(n):
                delay = start + i / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                futures.append(pool.submit(chat, port))
            results = [f.result() for f in futures]
        late = time.monotonic() - start - seconds
        upstream = sum(u.total() for u in ups)
        statuses = {}
        for s, _ in results:
            statuses[s] = statuses.get(s, 0) + 1
        return {
            "budget": budget, "breaker": breaker, "client": n,
            "upstream": upstream, "per_client": upstream / n,
            "attempts_header": sum(a for _, a in results),
            "statuses": statuses, "exhausted": exhausted(port),
            "sent_late_s": round(max(late, 0.0), 2),
        }
    finally:
        proc.terminate()
        proc.wait()
        for u in ups:
            u.server.shutdown()


def main():
    rate = int(sys.argv[1]) if len(sys.argv) > 1 else 100
    seconds = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    print(f"binary: {binary()}; {rate} req/s for {seconds} s, 3 providers all answering 500")
    print(f"{'breaker':<10}{'budget':<8}{'client':>8}{'upstream':>10}{'per req':>9}"
          f"{'exhausted':>11}  statuses")
    with tempfile.TemporaryDirectory() as work:
        for breaker in (False, True):
            for budget in (False, True):
                r = run(work, rate, seconds, budget, breaker)
                print(f"{'default' if breaker else 'off':<10}{'on' if budget else 'off':<8}"
                      f"{r['client']:>8}{r['upstream']:>10}{r['per_client']:>9.3f}"
                      f"{r['exhausted']:>11}  {r['statuses']}"
                      f"  (header sum {r['attempts_header']}, load ran {r['sent_late_s']} s late)",
                      flush=True)


if __name__ == "__main__":
    main()
