#!/usr/bin/env python3
"""Instructions per streamed answer, counted by callgrind (repeatable on a busy machine,
unlike wall-clock numbers).

Starts a mock OpenAI-kind upstream answering every chat request with a 20-chunk stream
(role, 18 words, finish, usage, [DONE]), the given proxy binary under
`valgrind --tool=callgrind`, warms up, zeroes the counters, sends N streamed chat
requests (over 4 keep-alive connections), dumps the counters and prints instructions per stream.

  scripts/profile_stream.py BINARY [N] [--burst | --plain] [--telemetry] [--out FILE]

Without --burst the mock writes each event on its own, 3 ms apart, so the proxy mostly
reads them one by one; with --burst it writes the whole stream at once (one upstream read),
like nginx answering a fixed body. With --plain the requests are not streamed and the
mock answers each with one chat.completion body: instructions per plain request.
With --telemetry the proxy exports traces (`[telemetry]`, every span) to a small
OTLP/HTTP receiver in this script that answers 200 and counts the spans it decodes;
the counters are zeroed only once the warm-up's spans have arrived and dumped only
once every measured request's spans have, so the export task's work (protobuf
encoding, the HTTP request) is counted in full. Run with and without it to see what
traces cost per request.
`callgrind_annotate FILE` shows where they go. CALLGRIND_ARGS adds valgrind options
(`--cache-sim=yes` counts cache misses too: what instructions alone do not show).
"""

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time

WORDS = 18
GAP = 0.003


def chunk(delta, finish=None, usage=None):
    c = {"id": "chatcmpl-prof", "object": "chat.completion.chunk", "created": 1700000000,
         "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_prof",
         "choices": [] if usage else [{"index": 0, "delta": delta, "logprobs": None,
                                       "finish_reason": finish}]}
    if usage:
        c["usage"] = usage
    return f"data: {json.dumps(c, separators=(',', ':'))}\n\n".encode()


ANSWER = json.dumps({
    "id": "chatcmpl-prof", "object": "chat.completion", "created": 1700000000,
    "model": "gpt-4o-2024-08-06", "system_fingerprint": "fp_prof",
    "choices": [{"index": 0, "message": {"role": "assistant", "refusal": None, "annotations": [],
                 "content": " ".join(f"word{i}" for i in range(WORDS))},
                 "logprobs": None, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 9, "completion_tokens": WORDS, "total_tokens": 9 + WORDS},
}, separators=(",", ":")).encode()

EVENTS = ([chunk({"role": "assistant", "content": ""})]
          + [chunk({"content": f" word{i}"}) for i in range(WORDS)]
          + [chunk({}, "stop"),
             chunk(None, usage={"prompt_tokens": 9, "completion_tokens": WORDS,
                                "total_tokens": 9 + WORDS}),
             b"data: [DONE]\n\n"])


async def upstream(reader, writer, burst):
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
            body = await reader.readexactly(length)
            if b'"stream":true' not in body.replace(b" ", b""):
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER))
                await writer.drain()
                continue
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                         b"transfer-encoding: chunked\r\n\r\n")
            pieces = [b"".join(EVENTS)] if burst else EVENTS
            for p in pieces:
                writer.write(b"%x\r\n%s\r\n" % (len(p), p))
                await writer.drain()
                if not burst:
                    await asyncio.sleep(GAP)
            writer.write(b"0\r\n\r\n")
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
        writer.close()


async def read_answer(r):
    """One HTTP/1.1 response's body (content-length or chunked), leaving the
    connection ready for the next request."""
    head = await r.readuntil(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length:\s*(\d+)", head)
    if length:
        return await r.readexactly(int(length.group(1)))
    body = b""
    while True:
        size = int((await r.readuntil(b"\r\n")).strip(), 16)
        body += (await r.readexactly(size + 2))[:size]
        if size == 0:
            return body


def varint(buf, i):
    n = shift = 0
    while True:
        b = buf[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if b < 0x80:
            return n, i


def fields(buf):
    """(field number, bytes) of each length-delimited field of a protobuf message."""
    i = 0
    while i < len(buf):
        key, i = varint(buf, i)
        wire = key & 7
        if wire == 0:
            _, i = varint(buf, i)
        elif wire == 1:
            i += 8
        elif wire == 5:
            i += 4
        elif wire == 2:
            n, i = varint(buf, i)
            yield key >> 3, buf[i:i + n]
            i += n
        else:
            raise ValueError(f"protobuf wire type {wire}")


def span_count(export):
    """Spans in an ExportTraceServiceRequest: resource_spans(1) > scope_spans(2) > spans(2)."""
    return sum(1 for f, rs in fields(export) if f == 1
               for g, ss in fields(rs) if g == 2
               for h, _ in fields(ss) if h == 2)


class Receiver:
    """An OTLP/HTTP collector that answers 200 and counts spans."""

    def __init__(self):
        self.spans = 0
        self.changed = asyncio.Event()

    async def serve(self, reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length:\s*(\d+)", head).group(1))
                self.spans += span_count(await reader.readexactly(length))
                self.changed.set()
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/x-protobuf\r\n"
                             b"content-length: 0\r\n\r\n")
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, asyncio.CancelledError):
            writer.close()

    async def wait_for(self, spans, timeout=120):
        async def until():
            while self.spans < spans:
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(until(), timeout)


async def streams(port, n, plain=False, parallel=4):
    """n requests over `parallel` keep-alive connections, as a load generator
    (wrk in scripts/bench.sh) sends them."""
    body = json.dumps({"model": "default", "stream": not plain,
                       "messages": [{"role": "user", "content": "Hello!"}]}).encode()
    request = (b"POST /v1/chat/completions HTTP/1.1\r\nhost: proxy\r\n"
               b"content-type: application/json\r\n"
               b"content-length: %d\r\n\r\n%s" % (len(body), body))
    left = iter(range(n))

    async def worker():
        r, w = await asyncio.open_connection("127.0.0.1", port)
        for _ in left:
            w.write(request)
            data = await asyncio.wait_for(read_answer(r), 120)
            if (b"[DONE]" not in data and not plain) or b"word17" not in data:
                raise SystemExit(f"bad stream: {data[:300]!r}")
        w.close()
    await asyncio.gather(*(worker() for _ in range(parallel)))


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("n", nargs="?", type=int, default=200)
    ap.add_argument("--burst", action="store_true")
    ap.add_argument("--plain", action="store_true")
    ap.add_argument("--telemetry", action="store_true")
    ap.add_argument("--out", default="callgrind.stream.out")
    a = ap.parse_args()
    up_port, proxy_port = free_port(), free_port()
    server = await asyncio.start_server(lambda r, w: upstream(r, w, a.burst), "127.0.0.1", up_port)
    receiver = Receiver()
    telemetry = ""
    if a.telemetry:
        otlp = await asyncio.start_server(receiver.serve, "127.0.0.1", 0)
        telemetry = (f'[telemetry]\notlp_endpoint = '
                     f'"http://127.0.0.1:{otlp.sockets[0].getsockname()[1]}"\n')
    work = tempfile.mkdtemp()
    cfg = os.path.join(work, "proxy.toml")
    with open(cfg, "w") as f:
        f.write(f'[server]\nlisten = "127.0.0.1:{proxy_port}"\n'
                f'[providers.upstream]\nkind = "openai"\n'
                f'base_url = "http://127.0.0.1:{up_port}/v1"\napi_key_env = "PROF_KEY"\n'
                f'[[routes]]\nmodel = "default"\ntargets = ["upstream/gpt-4o"]\n{telemetry}')
    raw = os.path.join(work, "callgrind.out")
    proxy = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={raw}",
         *os.environ.get("CALLGRIND_ARGS", "").split(), a.binary, "--config", cfg],
        env={**os.environ, "PROF_KEY": "sk-prof", "RUST_LOG": "warn"},
        stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "proxy.log"), "w"))
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", proxy_port), 0.2).close()
                break
            except OSError:
                await asyncio.sleep(0.1)
        warmup = 10
        await streams(proxy_port, warmup, a.plain)
        if a.telemetry:  # a request span and an attempt span each
            await receiver.wait_for(2 * warmup)
        subprocess.run(["callgrind_control", "--zero", str(proxy.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        started = time.time()
        await streams(proxy_port, a.n, a.plain)
        if a.telemetry:
            await receiver.wait_for(2 * (warmup + a.n))
        subprocess.run(["callgrind_control", "--dump=streams", str(proxy.pid)], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    finally:
        proxy.terminate()
        proxy.wait(60)
        server.close()
    dumps = sorted(p for p in os.listdir(work) if p.startswith("callgrind.out."))
    dump = next(os.path.join(work, p) for p in dumps
                if "streams" in open(os.path.join(work, p), errors="replace").read(4000))
    shutil.move(dump, a.out)
    shutil.rmtree(work)
    total = next(int(l.split()[1]) for l in open(a.out) if l.startswith("summary:")
                 or l.startswith("totals:"))
    what = ("plain requests" if a.plain else
            f"streams ({'burst' if a.burst else 'events written one by one'})")
    if a.telemetry:
        what += f", traces on ({receiver.spans - 2 * warmup} spans received)"
    print(f"{a.n} {what} in {time.time() - started:.1f}s: {total:,} instructions, "
          f"{total // a.n:,} per {'request' if a.plain else 'stream'} -> {a.out}")


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
