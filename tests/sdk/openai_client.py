"""Drives the official `openai` SDK against a running understudy.

Usage: openai_client.py BASE_URL API_KEY  (scenarios as a JSON list on stdin)
Prints a JSON list with one result per scenario. Each chunk and answer is also
validated against the SDK's pydantic types (the SDK itself builds them without
validation), so a wrong type or a missing field fails loudly.
"""
import json
import sys

import openai
from openai.types.chat import ChatCompletion, ChatCompletionChunk


def complete(client, req):
    raw = client.chat.completions.with_raw_response.create(**req)
    c = raw.parse()
    ChatCompletion.model_validate(c.to_dict())
    msg = c.choices[0].message
    return {
        "ok": True,
        "headers": {k: v for k, v in raw.headers.items() if k.startswith("x-understudy")},
        "id": c.id,
        "model": c.model,
        "content": msg.content,
        "tool_calls": [
            {"id": t.id, "name": t.function.name, "arguments": t.function.arguments}
            for t in (msg.tool_calls or [])
        ],
        "finish_reason": c.choices[0].finish_reason,
        "usage": c.usage.to_dict() if c.usage else None,
    }


def stream(client, req):
    content, calls, finish, usage = "", {}, None, None
    ids, models, chunks = set(), set(), 0
    with client.chat.completions.create(stream=True, **req) as s:
        for chunk in s:
            ChatCompletionChunk.model_validate(chunk.to_dict())
            chunks += 1
            ids.add(chunk.id)
            models.add(chunk.model)
            if chunk.usage:
                usage = chunk.usage.to_dict()
            for ch in chunk.choices:
                d = ch.delta
                if d.content:
                    content += d.content
                for tc in d.tool_calls or []:
                    c = calls.setdefault(tc.index, {"id": None, "name": None, "arguments": ""})
                    if tc.id:
                        c["id"] = tc.id
                    if tc.function and tc.function.name:
                        c["name"] = tc.function.name
                    if tc.function and tc.function.arguments:
                        c["arguments"] += tc.function.arguments
                if ch.finish_reason:
                    finish = ch.finish_reason
    return {
        "ok": True,
        "content": content,
        "tool_calls": [calls[i] for i in sorted(calls)],
        "tool_call_indices": sorted(calls),
        "finish_reason": finish,
        "usage": usage,
        "ids": sorted(ids),
        "models": sorted(models),
        "chunks": chunks,
    }


def main():
    base_url, api_key = sys.argv[1], sys.argv[2]
    scenarios = json.load(sys.stdin)
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)
    results = []
    for sc in scenarios:
        try:
            fn = stream if sc["kind"] == "stream" else complete
            results.append(fn(client, sc["request"]))
        except openai.APIStatusError as e:
            results.append({"ok": False, "status": e.status_code, "error": type(e).__name__,
                            "code": e.code, "type": e.type, "message": e.message})
        except openai.APIError as e:
            # e.g. an error event inside a stream
            results.append({"ok": False, "status": None, "error": type(e).__name__, "message": str(e)})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
