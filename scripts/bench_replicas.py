#!/usr/bin/env python3
"""Measures what sharing state through Redis buys several replicas (issue: shared
state), with the release binary as real processes and Debian's redis-server:

1. 3 replicas, the lead answering 429 Retry-After: 30, round-robin load of 30 req/s
   for 10 s: requests that reach the lead in the window (goal 1; alone, each replica
   learns it for itself: 3).
2. Propagation of a cooldown: replica A learns it (a 429 on a fresh target), replica
   B is polled until it is in force there; p50/p99 over 100 trials.
3. One replica, redis backend vs memory, same run: throughput and p50/p99 under wrk
   (64 connections, nginx as the upstream, as scripts/bench.sh).
4. Cache hit ratio across 3 replicas for a repeated request mix, shared vs not.

Usage: scripts/bench_replicas.py [1 2 3 4]   (which parts; default all)
Needs redis-server, wrk, nginx (apt-get install redis-server wrk nginx).
"""
import http.client
import http.server
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "understudy")
ANSWER = json.dumps({"id": "chatcmpl-b", "object": "chat.completion", "created": 1,
                     "model": "m", "choices": [{"index": 0, "message": {"role": "assistant",
                     "content": "hi"}, "finish_reason": "stop"}],
                     "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Upstream:
    """An OpenAI-kind mock: models starting with `lead` answer 429 Retry-After: 30,
    others 200; counts requests per model."""

    def __init__(self):
        self.hits = {}
        self.lock = threading.Lock()
        up = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                model = json.loads(body).get("model", "")
                with up.lock:
                    up.hits[model] = up.hits.get(model, 0) + 1
                status, out, extra = up.reply(model)
                self.send_response(status)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(out)))
                for k, v in extra:
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(out)

        self.port = free_port()
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def reply(self, model):
        """Status, body and extra headers for a request to `model`."""
        if model.startswith("lead"):
            return 429, b'{"error":{"message":"slow down"}}', [("retry-after", "30")]
        return 200, ANSWER.encode(), []

    def count(self, prefix):
        with self.lock:
            return sum(v for k, v in self.hits.items() if k.startswith(prefix))


class Fleet:
    def __init__(self, work, n, toml, env):
        self.procs, self.ports = [], []
        for i in range(n):
            port = free_port()
            path = os.path.join(work, f"proxy{i}.toml")
            with open(path, "w") as f:
                f.write(toml.replace("LISTEN", f"127.0.0.1:{port}"))
            log = open(os.path.join(work, f"proxy{i}.log"), "w")
            self.procs.append(subprocess.Popen([BIN, "--config", path], env=env,
                                               stdout=log, stderr=log))
            self.ports.append(port)
        for port in self.ports:
            for _ in range(200):
                try:
                    if get(port, "/healthz")[0] == 200:
                        break
                except OSError:
                    pass
                time.sleep(0.05)
        # shared: wait until every replica reaches the engine
        if "redis" in toml:
            for port in self.ports:
                for _ in range(200):
                    if json.loads(get(port, "/status")[1]).get("state", {}).get("connected"):
                        break
                    time.sleep(0.05)

    def stop(self):
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            p.wait()


def get(port, path):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", path)
    r = c.getresponse()
    return r.status, r.read()


def chat(conn, model, text="hi"):
    body = json.dumps({"model": model, "temperature": 0,
                       "messages": [{"role": "user", "content": text}]})
    conn.request("POST", "/v1/chat/completions", body, {"content-type": "application/json"})
    r = conn.getresponse()
    r.read()
    return r.status, r.getheader("x-understudy-cache")


def config(up_port, backend, routes, cache=False):
    s = "[server]\nlisten = \"LISTEN\"\n"
    if backend == "redis":
        s += "[state]\nbackend = \"redis\"\n"
    if cache:
        s += "[cache]\nenabled = true\nmode = \"all\"\n"
    s += (f"[providers.lead]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{up_port}/v1\"\n"
          "api_key_env = \"K\"\n"
          f"[providers.spare]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:{up_port}/v1\"\n"
          "api_key_env = \"K\"\n")
    for model, targets in routes:
        s += f"[[routes]]\nmodel = \"{model}\"\ntargets = {json.dumps(targets)}\n"
    return s


def lead_hits(work, up, env, backend):
    model = f"lead-{backend}"
    toml = config(up.port, backend, [("default", [f"lead/{model}", "spare/ok"])])
    fleet = Fleet(work, 3, toml, env)
    conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=10) for p in fleet.ports]
    start = time.monotonic()
    failed = 0
    for i in range(300):  # 30 req/s for 10 s, round robin
        at = start + i / 30
        time.sleep(max(0.0, at - time.monotonic()))
        status, _ = chat(conns[i % 3], "default")
        failed += status != 200
    fleet.stop()
    return up.count(model), failed


def propagation(work, up, env, trials=100):
    routes = [(f"r{i}", [f"lead/lead-p{i}", "spare/ok"]) for i in range(trials)]
    fleet = Fleet(work, 2, config(up.port, "redis", routes), env)
    a = http.client.HTTPConnection("127.0.0.1", fleet.ports[0], timeout=10)
    b = http.client.HTTPConnection("127.0.0.1", fleet.ports[1], timeout=10)
    delays = []
    for i in range(trials):
        chat(a, f"r{i}")
        t0 = time.monotonic()
        while True:
            b.request("GET", "/status")
            s = json.loads(b.getresponse().read())
            if any(c["target"] == f"lead/lead-p{i}" for c in s["cooldowns"]):
                break
            if time.monotonic() - t0 > 5:
                break
        delays.append((time.monotonic() - t0) * 1000)
    fleet.stop()
    delays.sort()
    return statistics.median(delays), delays[int(len(delays) * 0.99) - 1]


def throughput(work, redis_url, backend, seconds=10):
    nginx_port = free_port()
    conf = os.path.join(work, f"nginx-{backend}.conf")
    with open(conf, "w") as f:
        f.write(f"""worker_processes 1; daemon off; pid {work}/nginx-{backend}.pid;
error_log {work}/nginx-error.log; events {{ worker_connections 4096; }}
http {{ access_log off; keepalive_requests 1000000; client_body_temp_path {work};
server {{ listen 127.0.0.1:{nginx_port};
location / {{ default_type application/json; return 200 '{ANSWER}'; }} }} }}""")
    nginx = subprocess.Popen(["taskset", "-c", "1", "nginx", "-c", conf, "-p", work])
    env = dict(os.environ, K="sk-bench", UNDERSTUDY_REDIS_URL=redis_url, RUST_LOG="warn")
    toml = config(nginx_port, backend, [("default", ["spare/ok"])])
    fleet = Fleet(work, 1, toml, env)
    subprocess.run(["taskset", "-pc", "0", str(fleet.procs[0].pid)], stdout=subprocess.DEVNULL)
    lua = os.path.join(work, "post.lua")
    with open(lua, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                'wrk.body = \'{"model":"default","messages":[{"role":"user","content":"Hello!"}]}\'\n')
    url = f"http://127.0.0.1:{fleet.ports[0]}/v1/chat/completions"
    subprocess.run(["taskset", "-c", "1", "wrk", "-t1", "-c8", "-d2s", "-s", lua, url],
                   stdout=subprocess.DEVNULL)
    out = subprocess.run(["taskset", "-c", "1", "wrk", "--latency", "-t1", "-c64",
                          f"-d{seconds}s", "-s", lua, url], capture_output=True, text=True).stdout
    fleet.stop()
    nginx.terminate()
    nginx.wait()
    rate = next(l.split()[1] for l in out.splitlines() if l.startswith("Requests/sec"))
    pct = {l.split()[0]: l.split()[1] for l in out.splitlines() if l.strip().startswith(("50%", "99%"))}
    return rate, pct.get("50%"), pct.get("99%")


def cache_ratio(work, up, env, backend, distinct=20, rounds=6):
    toml = config(up.port, backend, [("default", ["spare/ok"])], cache=True)
    fleet = Fleet(work, 3, toml, env)
    conns = [http.client.HTTPConnection("127.0.0.1", p, timeout=10) for p in fleet.ports]
    hits = total = 0
    for r in range(rounds):
        for q in range(distinct):
            i = r * distinct + q
            _, cache = chat(conns[i % 3], "default", f"question {q}")
            hits += cache == "hit"
            total += 1
        time.sleep(0.05)  # let the last writes of the round reach the engine
    fleet.stop()
    return hits / total


def main():
    for tool in ("redis-server", "wrk", "nginx"):
        if not shutil.which(tool):
            sys.exit(f"needs {tool}: apt-get install redis-server wrk nginx")
    subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    work = tempfile.mkdtemp()
    rport = free_port()
    redis = subprocess.Popen(["redis-server", "--port", str(rport), "--bind", "127.0.0.1",
                              "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
    redis_url = f"redis://127.0.0.1:{rport}/0"
    time.sleep(0.3)
    up = Upstream()
    env = dict(os.environ, K="sk-bench", UNDERSTUDY_REDIS_URL=redis_url, RUST_LOG="warn")
    parts = set(sys.argv[1:]) or {"1", "2", "3", "4"}
    try:
        if "1" in parts:
            print("== 1. 429 Retry-After: 30 on the lead; 3 replicas, 30 req/s round robin, 10 s")
            for backend in ("memory", "redis"):
                hits, failed = lead_hits(work, up, env, backend)
                print(f"{backend:>6}: lead hits {hits}, failed client requests {failed}")
        if "2" in parts:
            print("== 2. cooldown propagation to another replica, 100 trials")
            p50, p99 = propagation(work, up, env)
            print(f"after A's answer, in force on B: p50 {p50:.1f} ms  p99 {p99:.1f} ms "
                  "(polling /status: includes one status round trip)")
        if "3" in parts:
            print("== 3. one replica, 64 connections, 10 s each, alternating "
                  "(proxy on core 0; wrk + nginx on core 1)")
            for backend in ("memory", "redis", "memory", "redis"):
                rate, p50, p99 = throughput(work, redis_url, backend)
                print(f"{backend:>6}: {rate} req/s  p50 {p50}  p99 {p99}")
        if "4" in parts:
            print("== 4. cache hit ratio, 3 replicas, 20 distinct questions x 6 rounds round robin")
            for backend in ("memory", "redis"):
                print(f"{backend:>6}: {cache_ratio(work, up, env, backend):.0%} hits")
    finally:
        redis.terminate()
        up.server.shutdown()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
