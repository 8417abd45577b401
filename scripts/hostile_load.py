#!/usr/bin/env python3
"""Load shapes for scripts/mem.sh and scripts/overload.sh, standard library only.

  upstream PORT [--capacity N --service-ms MS]
      an OpenAI-kind upstream: non-streaming chat answers (at most N at once, each
      taking MS), and streams of one event a second for stream requests
  idle PORT N             N keep-alive connections, one request each, then held open
  streams PORT N SECS     N concurrent streams of the slow upstream, read for SECS
  rate PORT R SECS        an open-loop load of R requests/s for SECS; prints the
                          p50/p99 of 200 answers and the counts by status
"""
import asyncio
import json
import sys
import time

CHAT = json.dumps({"model": "default", "messages": [{"role": "user", "content": "hi"}]})
STREAM = json.dumps({"model": "default", "stream": True,
                     "messages": [{"role": "user", "content": "hi"}]})
ANSWER = json.dumps({
    "id": "chatcmpl-load", "object": "chat.completion", "created": 1700000000,
    "model": "m", "choices": [{"index": 0, "finish_reason": "stop",
                               "message": {"role": "assistant", "content": "ok"}}],
    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}).encode()


def chunk(content, finish=None):
    return json.dumps({"id": "chatcmpl-load", "object": "chat.completion.chunk",
                       "created": 1700000000, "model": "m",
                       "choices": [{"index": 0, "delta": {"content": content},
                                    "finish_reason": finish}]})


async def upstream(port, capacity, service_ms):
    slots = asyncio.Semaphore(capacity)

    async def serve(reader, writer):
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                body = await reader.readexactly(length)
                if b'"stream":true' in body:
                    writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                                 b"transfer-encoding: chunked\r\n\r\n")
                    for i in range(100000):
                        data = f"data: {chunk('tick ')}\n\n".encode()
                        writer.write(b"%x\r\n%s\r\n" % (len(data), data))
                        await writer.drain()
                        await asyncio.sleep(1)
                    continue
                async with slots:
                    await asyncio.sleep(service_ms / 1000)
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
                             b"content-length: %d\r\n\r\n%s" % (len(ANSWER), ANSWER))
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=4096)
    await server.serve_forever()


def request(body, path="/v1/chat/completions"):
    return (f"POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
            f"content-length: {len(body)}\r\n\r\n{body}").encode()


async def read_response(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ")[1])
    length = None
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":")[1])
    if length is not None:
        await reader.readexactly(length)
    return status


async def idle(port, n):
    conns = []
    for i in range(n):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        await read_response(r)
        conns.append((r, w))
    print(f"{len(conns)} idle keep-alive connections open", flush=True)
    await asyncio.sleep(3600)


async def streams(port, n, secs):
    events = [0]

    async def one():
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(request(STREAM))
        await r.readuntil(b"\r\n\r\n")
        while True:
            line = await r.readline()
            if not line:
                return
            if line.startswith(b"data:"):
                events[0] += 1

    tasks = []
    for _ in range(n):
        tasks.append(asyncio.create_task(one()))
        await asyncio.sleep(0.001)
    print(f"{n} streams started", flush=True)
    start = time.monotonic()
    while time.monotonic() - start < secs:
        await asyncio.sleep(10)
        print(f"t={time.monotonic() - start:.0f}s events={events[0]}", flush=True)
    alive = sum(not t.done() for t in tasks)
    print(f"streams still open: {alive}", flush=True)


async def rate(port, r, secs):
    results = []

    async def one():
        started = time.monotonic()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request(CHAT))
            status = await asyncio.wait_for(read_response(reader), 60)
            writer.close()
        except Exception:
            status = 0
        results.append((status, time.monotonic() - started))

    tasks = []
    start = time.monotonic()
    for i in range(int(r * secs)):
        delay = start + i / r - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    ok = sorted(t for s, t in results if s == 200)
    by = {}
    for s, _ in results:
        by[s] = by.get(s, 0) + 1
    pct = lambda p: ok[min(len(ok) - 1, int(p * len(ok)))] * 1000 if ok else float("nan")
    print(f"offered {r}/s for {secs}s: statuses {dict(sorted(by.items()))}; "
          f"admitted p50 {pct(0.5):.0f} ms, p99 {pct(0.99):.0f} ms", flush=True)


def main():
    cmd, port = sys.argv[1], int(sys.argv[2])
    if cmd == "upstream":
        cap = int(sys.argv[sys.argv.index("--capacity") + 1]) if "--capacity" in sys.argv else 1000000
        ms = int(sys.argv[sys.argv.index("--service-ms") + 1]) if "--service-ms" in sys.argv else 0
        asyncio.run(upstream(port, cap, ms))
    elif cmd == "idle":
        asyncio.run(idle(port, int(sys.argv[3])))
    elif cmd == "streams":
        asyncio.run(streams(port, int(sys.argv[3]), int(sys.argv[4])))
    elif cmd == "rate":
        asyncio.run(rate(port, float(sys.argv[3]), int(sys.argv[4])))


if __name__ == "__main__":
    main()
