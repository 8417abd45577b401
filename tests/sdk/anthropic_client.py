"""Drives the official `anthropic` SDK against a running understudy.

Usage: anthropic_client.py BASE_URL API_KEY  (scenarios as a JSON list on stdin)
Prints a JSON list with one result per scenario.

Scenario kinds (each may carry "api_key" to override the key, and "auth": "bearer"
to send it as `Authorization: Bearer` instead of `x-api-key`):
- create:     messages.create (raw response, for the headers); the answer is
              validated with `anthropic.types.Message.model_validate`.
- stream:     messages.stream; every raw event is validated with
              `TypeAdapter(RawMessageStreamEvent)`, the final message with
              `Message.model_validate`.
- raw_stream: messages.create(stream=True): the raw events, each validated.
- tool_round_trip: create with tools; every tool_use block is answered from
              "results" (tool name -> text) in a second create; both answers kept.
- models:     models.list(), every entry validated with `ModelInfo.model_validate`.
- count_tokens: messages.count_tokens, validated with `MessageTokensCount`.
- check_requests: no call; "bodies" (what an Anthropic upstream received) are
              validated deeply against the SDK's `MessageCreateParams` types, and no
              top-level key may be one those types (or the older sampling fields)
              lack.
Errors: the SDK's exception class (and its bases), status, type and message.
"""
import json
import sys
import typing

import anthropic
import pydantic
from anthropic.types import Message, MessageTokensCount, ModelInfo, RawMessageStreamEvent
from anthropic.types import message_create_params

RAW_EVENT = pydantic.TypeAdapter(RawMessageStreamEvent)
RAW_TYPES = {
    "message_start",
    "message_delta",
    "message_stop",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
}


def understudy_headers(headers):
    return {k: v for k, v in headers.items() if k.startswith("x-understudy")}


def validated(message):
    """The message as a dict, after the SDK's own type accepted it."""
    d = message.to_dict()
    Message.model_validate(d)
    return d


def summary(d):
    return {
        "id": d["id"],
        "model": d["model"],
        "role": d["role"],
        "text": "".join(b.get("text", "") for b in d["content"] if b["type"] == "text"),
        "tool_uses": [
            {"id": b["id"], "name": b["name"], "input": b["input"]}
            for b in d["content"]
            if b["type"] == "tool_use"
        ],
        "block_types": [b["type"] for b in d["content"]],
        "stop_reason": d["stop_reason"],
        "usage": d["usage"],
        "message": d,
    }


def create(client, sc):
    raw = client.messages.with_raw_response.create(**sc["request"])
    out = summary(validated(raw.parse()))
    out.update({"ok": True, "headers": understudy_headers(raw.headers)})
    return out


def stream(client, sc):
    events, types, text = [], [], ""
    with client.messages.stream(**sc["request"]) as s:
        headers = understudy_headers(s.response.headers)
        for ev in s:
            if ev.type in RAW_TYPES:
                d = ev.to_dict()
                if ev.type == "content_block_stop":
                    # the helper adds the finished block; the wire event has none
                    d.pop("content_block", None)
                RAW_EVENT.validate_python(d)
                types.append(ev.type)
                events.append(d)
            elif ev.type == "text":
                text += ev.text
        final = validated(s.get_final_message())
    out = summary(final)
    out.update(
        {"ok": True, "headers": headers, "events": events, "types": types, "streamed_text": text}
    )
    return out


def raw_stream(client, sc):
    events, types = [], []
    try:
        with client.messages.create(stream=True, **sc["request"]) as s:
            for ev in s:
                d = ev.to_dict()
                RAW_EVENT.validate_python(d)
                types.append(ev.type)
                events.append(d)
    except anthropic.APIStatusError as e:
        out = error(e)
        out.update({"events": events, "types": types})
        return out
    return {"ok": True, "events": events, "types": types}


def tool_round_trip(client, sc):
    req = dict(sc["request"])
    first = validated(client.messages.create(**req))
    results = [
        {"type": "tool_result", "tool_use_id": b["id"], "content": sc["results"][b["name"]]}
        for b in first["content"]
        if b["type"] == "tool_use"
    ]
    if not results:
        return {"ok": False, "error": "NoToolUse", "first": summary(first)}
    req["messages"] = list(req["messages"]) + [
        {"role": "assistant", "content": first["content"]},
        {"role": "user", "content": results},
    ]
    second = validated(client.messages.create(**req))
    return {"ok": True, "first": summary(first), "second": summary(second)}


def models(client, sc):
    page = client.models.list()
    data = []
    for m in page.data:
        d = m.to_dict()
        try:
            ModelInfo.model_validate(d)
            d["_valid"] = True
        except pydantic.ValidationError as e:
            d["_valid"] = False
            d["_invalid"] = [".".join(map(str, x["loc"])) for x in e.errors()]
        data.append(d)
    return {"ok": True, "ids": [m["id"] for m in data], "data": data}


def deep(x):
    """Materialises the lazy iterables pydantic leaves, so their items are validated."""
    if isinstance(x, dict):
        return {k: deep(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [deep(v) for v in x]
    if hasattr(x, "__next__"):
        return [deep(v) for v in x]
    return x


# Kept alive: the lazy iterables they return need their validators while consumed.
REQUEST_ADAPTERS = {
    streaming: pydantic.TypeAdapter(params)
    for streaming, params in (
        (True, message_create_params.MessageCreateParamsStreaming),
        (False, message_create_params.MessageCreateParamsNonStreaming),
    )
}
REQUEST_KEYS = set(typing.get_type_hints(message_create_params.MessageCreateParamsStreaming)) | {
    "temperature",
    "top_p",
    "top_k",
}


def check_requests(_client, sc):
    problems = []
    for i, body in enumerate(sc["bodies"]):
        unknown = sorted(set(body) - REQUEST_KEYS)
        if unknown:
            problems.append(f"body {i}: unknown keys {unknown}")
        try:
            deep(REQUEST_ADAPTERS[bool(body.get("stream"))].validate_python(body))
        except pydantic.ValidationError as e:
            problems.append(f"body {i}: {str(e)[:3000]}")
    return {"ok": not problems, "problems": problems}


def count_tokens(client, sc):
    raw = client.messages.with_raw_response.count_tokens(**sc["request"])
    d = raw.parse().to_dict()
    MessageTokensCount.model_validate(d)
    return {
        "ok": True,
        "input_tokens": d["input_tokens"],
        "estimate": raw.headers.get("x-understudy-estimate"),
    }


KINDS = {
    "create": create,
    "stream": stream,
    "raw_stream": raw_stream,
    "tool_round_trip": tool_round_trip,
    "models": models,
    "check_requests": check_requests,
    "count_tokens": count_tokens,
}


def error(e):
    return {
        "ok": False,
        "status": e.status_code,
        "error": type(e).__name__,
        "bases": [c.__name__ for c in type(e).__mro__],
        "type": e.type,
        "message": e.api_message or e.message,
        "body": e.body if isinstance(e.body, (dict, list, str)) else None,
        "retry_after": e.response.headers.get("retry-after"),
    }


def client_for(base_url, api_key, sc):
    key = sc.get("api_key", api_key)
    common = {"base_url": base_url, "max_retries": 0, "timeout": 30}
    if sc.get("auth") == "bearer":
        return anthropic.Anthropic(auth_token=key, **common)
    return anthropic.Anthropic(api_key=key, **common)


def main():
    base_url, api_key = sys.argv[1], sys.argv[2]
    scenarios = json.load(sys.stdin)
    results = []
    for sc in scenarios:
        try:
            results.append(KINDS[sc["kind"]](client_for(base_url, api_key, sc), sc))
        except anthropic.APIStatusError as e:
            results.append(error(e))
        except anthropic.APIError as e:
            results.append({"ok": False, "status": None, "error": type(e).__name__,
                            "bases": [c.__name__ for c in type(e).__mro__], "message": str(e)})
        except pydantic.ValidationError as e:
            results.append({"ok": False, "status": None, "error": "ValidationError",
                            "message": str(e)})
    json.dump(results, sys.stdout, default=str)


if __name__ == "__main__":
    main()
