"""Drives the official `openai` SDK's Responses API against a running understudy.

Usage: responses_client.py BASE_URL API_KEY  (scenarios as a JSON list on stdin)
Prints a JSON list with one result per scenario.

Scenario kinds:
  {"kind": "create", "request": {...}}            client.responses.create
  {"kind": "stream", "request": {...}}            client.responses.stream (the helper)
  {"kind": "retrieve", "id": "..."}               client.responses.retrieve
  {"kind": "delete", "id": "..."}                 client.responses.delete
  {"kind": "input_items", "id": "...", "params": {"order", "after", "limit"}}
  {"kind": "input_items_all", "id": "...", "params": {...}}   auto-pagination

Any string in a scenario of the form "$N.id" or "$N.call_id" is replaced by the id
(or the first function call's call_id) of the response scenario N produced, so a
later turn can continue an earlier one.

Every answer is validated with the SDK's pydantic types (the SDK itself builds them
without validation): every Response with `Response.model_validate`, every stream
event with `TypeAdapter(ResponseStreamEvent)`, every input item with
`TypeAdapter(ResponseItem)`. Streams must number their events 0, 1, 2, ... A
validation failure is reported in the scenario's result ("ok": false, "error":
"validation") so the Rust test shows which one.
"""
import json
import re
import sys
import typing
import warnings

import openai
import pydantic
from openai.types.responses import Response, ResponseItem, ResponseStreamEvent

# The stream helper's parsed snapshots serialize with harmless pydantic warnings.
warnings.filterwarnings("ignore", message="Pydantic serializer warnings")



def members_by_type(union):
    """{type literal: [models]} for a union of the SDK, so an invalid value is
    reported against the models its `type` names, not against all of them."""
    out = {}
    args = typing.get_args(union)
    inner = args[0] if args and typing.get_origin(union) is typing.Annotated else union
    for model in typing.get_args(inner):
        field = model.model_fields.get("type")
        for literal in typing.get_args(field.annotation) if field else ():
            out.setdefault(literal, []).append(model)
    return out


EVENTS = members_by_type(ResponseStreamEvent)
ITEMS = members_by_type(ResponseItem)
EVENT = pydantic.TypeAdapter(ResponseStreamEvent)
ITEM = pydantic.TypeAdapter(ResponseItem)


def validate_member(d, members, adapter, where):
    models = members.get(d.get("type"))
    errors = []
    for model in models or []:
        try:
            model.model_validate(d)
            return
        except pydantic.ValidationError as e:
            errors.append(str(e))
    if models is None:
        try:
            adapter.validate_python(d)
            return
        except pydantic.ValidationError as e:
            errors.append(str(e))
    raise Invalid(f"{where} (type {d.get('type')!r}) is not valid: {' / '.join(errors)}"
                  f"\nvalue: {json.dumps(d)}")
REF = re.compile(r"^\$(\d+)\.(id|call_id)$")
# Bound on items read through auto-pagination (a proxy that always says has_more
# must not loop forever).
MAX_ITEMS = 200


class Invalid(Exception):
    pass


def validate_response(d, where):
    try:
        Response.model_validate(d)
    except pydantic.ValidationError as e:
        raise Invalid(f"{where}: not a valid Response: {e}") from None


def summary(resp_dict):
    """The fields the tests look at, from a Response as a dict."""
    d = resp_dict
    calls = [o for o in d.get("output") or [] if o.get("type") == "function_call"]
    text = "".join(
        c.get("text", "")
        for o in d.get("output") or []
        if o.get("type") == "message"
        for c in o.get("content") or []
        if c.get("type") == "output_text"
    )
    keys = ["id", "object", "created_at", "status", "model", "incomplete_details", "error",
            "output", "usage", "instructions", "tools", "tool_choice", "temperature", "top_p",
            "max_output_tokens", "parallel_tool_calls", "previous_response_id", "text",
            "metadata", "store"]
    out = {k: d.get(k) for k in keys}
    out["output_text"] = text
    out["function_calls"] = [
        {"id": c.get("id"), "call_id": c.get("call_id"), "name": c.get("name"),
         "arguments": c.get("arguments")}
        for c in calls
    ]
    return out


def understudy_headers(headers):
    return {k: v for k, v in headers.items() if k.startswith("x-understudy") or k == "x-request-id"}


def create(client, sc):
    raw = client.responses.with_raw_response.create(**sc["request"])
    r = raw.parse()
    d = r.to_dict()
    validate_response(d, "create")
    out = {"ok": True, "headers": understudy_headers(raw.headers), **summary(d)}
    # the SDK's own convenience property must agree with the output items
    out["sdk_output_text"] = r.output_text
    return out


def stream(client, sc):
    events, types, text, args = [], [], "", ""
    seqs, headers = [], {}
    with client.responses.stream(**sc["request"]) as s:
        raw_stream = getattr(s, "_raw_stream", None)
        http = getattr(raw_stream, "response", None)
        if http is not None:
            headers = understudy_headers(http.headers)
        for ev in s:
            d = ev.to_dict()
            validate_member(d, EVENTS, EVENT, f"event #{len(types)}")
            if ev.type in ("response.created", "response.in_progress", "response.completed",
                           "response.incomplete", "response.failed"):
                validate_response(d["response"], ev.type)
            types.append(ev.type)
            seqs.append(d.get("sequence_number"))
            if ev.type == "response.output_text.delta":
                text += ev.delta
            elif ev.type == "response.function_call_arguments.delta":
                args += ev.delta
            events.append(d)
        final = None
        final_error = None
        try:
            f = s.get_final_response()
            final = f.to_dict()
            validate_response(final, "get_final_response")
        except RuntimeError as e:
            final_error = str(e)
    if seqs != list(range(len(seqs))):
        raise Invalid(f"sequence_number not 0,1,2,...: {seqs}")
    last = events[-1] if events else {}
    return {
        "ok": True,
        "headers": headers,
        "types": types,
        "text": text,
        "arguments": args,
        "events": events,
        "last": last,
        "final": summary(final) if final else None,
        "final_error": final_error,
    }


def retrieve(client, sc):
    raw = client.responses.with_raw_response.retrieve(sc["id"])
    d = raw.parse().to_dict()
    validate_response(d, "retrieve")
    return {"ok": True, **summary(d)}


def delete(client, sc):
    raw = client.responses.with_raw_response.delete(sc["id"])
    raw.parse()  # the SDK's own handling (returns None)
    return {"ok": True, "status": raw.status_code, "body": raw.http_response.json()}


def input_items(client, sc):
    raw = client.responses.input_items.with_raw_response.list(sc["id"], **sc.get("params", {}))
    page = raw.parse()
    for i, item in enumerate(page.data):
        validate_member(item.to_dict(), ITEMS, ITEM, f"input item #{i}")
    body = raw.http_response.json()
    return {"ok": True, "body": body, "ids": [it.id for it in page.data]}


def input_items_all(client, sc):
    page = client.responses.input_items.list(sc["id"], **sc.get("params", {}))
    ids, types = [], []
    for item in page:
        validate_member(item.to_dict(), ITEMS, ITEM, f"input item #{len(ids)}")
        ids.append(item.id)
        types.append(item.type)
        if len(ids) >= MAX_ITEMS:
            break
    return {"ok": True, "ids": ids, "types": types}


KINDS = {"create": create, "stream": stream, "retrieve": retrieve, "delete": delete,
         "input_items": input_items, "input_items_all": input_items_all}


def substitute(value, results):
    if isinstance(value, str):
        m = REF.match(value)
        if not m:
            return value
        r = results[int(m.group(1))]
        if m.group(2) == "id":
            return r.get("id") or (r.get("final") or {}).get("id")
        calls = r.get("function_calls") or (r.get("final") or {}).get("function_calls") or []
        return calls[0]["call_id"] if calls else None
    if isinstance(value, list):
        return [substitute(v, results) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, results) for k, v in value.items()}
    return value


def main():
    base_url, api_key = sys.argv[1], sys.argv[2]
    scenarios = json.load(sys.stdin)
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)
    results = []
    for sc in scenarios:
        sc = substitute(sc, results)
        try:
            results.append(KINDS[sc["kind"]](client, sc))
        except Invalid as e:
            results.append({"ok": False, "error": "validation", "message": str(e)})
        except openai.APIStatusError as e:
            results.append({"ok": False, "status": e.status_code, "error": type(e).__name__,
                            "code": e.code, "type": e.type, "param": e.param,
                            "message": e.message})
        except openai.APIError as e:
            results.append({"ok": False, "status": None, "error": type(e).__name__,
                            "message": str(e)})
        except Exception as e:  # the SDK's stream helper raises RuntimeError & co.
            results.append({"ok": False, "status": None, "error": type(e).__name__,
                            "message": str(e)})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
