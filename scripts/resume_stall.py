#!/usr/bin/env python3
"""How long a resumed stream stalls its client (`failover.resume_streams`): from the
moment the first upstream cuts the stream to the first continued token the client
reads, against the latency of the upstream that continues it.

Starts two mock upstreams on 127.0.0.1 and the given proxy binary in front of them:
an OpenAI-kind one that streams 40 words and then resets the connection, and an
Ollama one (`/api/chat`, NDJSON) that waits LATENCY ms before its response head and
then streams the other 40 words. Each streamed chat request is timed (one clock, one
process): cut → the continuation's request reaching Ollama ("notice") and cut → the
first continued word at the client ("stall"). Prints the median and p90 per latency;
"stall - latency" is what the proxy adds.

  scripts/resume_stall.py [BINARY] [--n N] [--latency MS ...]
"""

import argparse
import asyncio
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time

CUT = 40
WORDS = 80


def word(i):
    return "w0" if i == 0 else f" w{i}"


def sse(delta, finish=None):
    c = {"id": "chatcmpl-stall", "object": "chat.completion.chunk", "created": 1700000000,
         "model": "m-a", "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                      "finish_reason": finish}]}
    return f"data: {json.dumps(c)}\n\n".encode()


def chunked(b):
    return f"{len(b):x}\r\n".encode() + b + b"\r\n"


async def read_request(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
    await reader.readexactly(length)


class Run:
    def __init__(self):
        self.cut = None
        self.noticed = None
        self.latency = 0.0


RUN = Run()


async def first(reader, writer):
    """OpenAI-kind: role + 40 words, then a connection reset."""
    await read_request(reader)
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                 b"transfer-encoding: chunked\r\n\r\n")
    writer.write(chunked(sse({"role": "assistant", "content": ""})))
    for i in range(CUT):
        writer.write(chunked(sse({"content": word(i)})))
    await writer.drain()
    await asyncio.sleep(0.02)  # the client has the 40 words before the cut
    RUN.cut = time.perf_counter()
    writer.transport.abort()


async def ollama(reader, writer):
    """Ollama: after `latency`, the other 40 words as NDJSON."""
    await read_request(reader)
    RUN.noticed = time.perf_counter()
    await asyncio.sleep(RUN.latency)
    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-ndjson\r\n"
                 b"transfer-encoding: chunked\r\n\r\n")
    for i in range(CUT, WORDS):
        line = {"model": "llama3.2", "created_at": "2025-01-15T10:20:30Z",
                "message": {"role": "assistant", "content": word(i)}, "done": False}
        writer.write(chunked((json.dumps(line) + "\n").encode()))
    done = {"model": "llama3.2", "created_at": "2025-01-15T10:20:31Z",
            "message": {"role": "assistant", "content": ""}, "done": True,
            "done_reason": "stop", "eval_count": 40, "prompt_eval_count": 90}
    writer.write(chunked((json.dumps(done) + "\n").encode()))
    writer.write(b"0\r\n\r\n")
    await writer.drain()
    writer.close()


async def one(port):
    """One streamed chat request; the time the first continued word arrived."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    body = json.dumps({"model": "default", "stream": True,
                       "messages": [{"role": "user", "content": "Count to 80."}]}).encode()
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                 + f"content-length: {len(body)}\r\nconnection: close\r\n\r\n".encode() + body)
    await writer.drain()
    seen = b""
    continued = None
    while True:
        data = await asyncio.wait_for(reader.read(65536), 30)
        if not data:
            break
        seen += data
        if continued is None and f'"{word(CUT)}"'.encode() in seen:
            continued = time.perf_counter()
    writer.close()
    text = "".join(m.decode() for m in re.findall(rb'"content":"([^"]*)"', seen))
    expected = "".join(word(i) for i in range(WORDS))
    if text != expected or seen.count(b"[DONE]") != 1:
        sys.exit(f"the stream was not resumed whole: {seen[-400:]!r}")
    return continued


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_port(port, proc):
    for _ in range(200):
        if proc.poll() is not None:
            sys.exit("the proxy exited")
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    sys.exit("the proxy did not start")


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary", nargs="?", default="target/debug/understudy")
    ap.add_argument("--n", type=int, default=30)
    ap.add_argument("--latency", type=float, nargs="*", default=[0, 50, 200])
    args = ap.parse_args()

    a = await asyncio.start_server(first, "127.0.0.1", 0)
    b = await asyncio.start_server(ollama, "127.0.0.1", 0)
    pa, pb = a.sockets[0].getsockname()[1], b.sockets[0].getsockname()[1]
    port = free_port()
    tmp = tempfile.mkdtemp()
    cfg = os.path.join(tmp, "proxy.toml")
    with open(cfg, "w") as f:
        f.write(f"""[server]
listen = "127.0.0.1:{port}"
[failover]
resume_streams = true
[circuit_breaker]
failures = 1000000
[providers.a]
kind = "openai"
base_url = "http://127.0.0.1:{pa}/v1"
api_key_env = "TEST_KEY"
[providers.b]
kind = "ollama"
base_url = "http://127.0.0.1:{pb}"
[[routes]]
model = "default"
targets = ["a/m-a", "b/llama3.2"]
""")
    env = dict(os.environ, TEST_KEY="sk-test", RUST_LOG="warn")
    log = open(os.path.join(tmp, "proxy.log"), "w")
    proc = subprocess.Popen([args.binary, "--config", cfg], env=env, stderr=log)
    try:
        await wait_port(port, proc)
        print(f"{'latency':>8} {'notice p50':>11} {'stall p50':>10} {'stall p90':>10} "
              f"{'p50 - latency':>14}   (ms, n={args.n})")
        for ms in args.latency:
            RUN.latency = ms / 1000
            notice, stall = [], []
            for _ in range(args.n + 2):
                continued = await one(port)
                notice.append((RUN.noticed - RUN.cut) * 1000)
                stall.append((continued - RUN.cut) * 1000)
            notice, stall = notice[2:], stall[2:]  # warm-up
            med = statistics.median(stall)
            print(f"{ms:>8.0f} {statistics.median(notice):>11.2f} {med:>10.2f} "
                  f"{pct(stall, 90):>10.2f} {med - ms:>14.2f}")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    asyncio.run(main())
