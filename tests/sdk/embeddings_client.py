"""Drives the official `openai` SDK's `embeddings.create` against a running understudy.

Usage: embeddings_client.py BASE_URL API_KEY  (scenarios as a JSON list on stdin)
Each scenario is {"request": {...embeddings.create kwargs...}}. Prints a JSON list
with one result per scenario: the x-understudy headers, the model, usage, each
item's index and its vector as floats, and whether the SDK handed back a base64
string (it does when the caller asked for base64 explicitly; when the caller gives
no encoding_format the SDK itself asks for base64 and decodes it).

Every answer is validated against the SDK's pydantic `CreateEmbeddingResponse` (the
SDK builds it without validation). A base64 vector is first decoded as OpenAI
defines it — little-endian float32 — so a wrong length or alphabet fails loudly.
"""
import array
import base64
import json
import sys

import openai
from openai.types import CreateEmbeddingResponse


def floats(embedding):
    if isinstance(embedding, str):
        raw = base64.b64decode(embedding, validate=True)
        if len(raw) % 4:
            raise ValueError(f"base64 vector of {len(raw)} bytes is not float32s")
        a = array.array("f")
        a.frombytes(raw)
        if sys.byteorder != "little":
            a.byteswap()
        return a.tolist()
    return list(embedding)


def create(client, req):
    raw = client.embeddings.with_raw_response.create(**req)
    r = raw.parse()
    d = r.to_dict()
    as_strings = [isinstance(e["embedding"], str) for e in d["data"]]
    for e in d["data"]:
        e["embedding"] = floats(e["embedding"])
    CreateEmbeddingResponse.model_validate(d)
    return {
        "ok": True,
        "headers": {k: v for k, v in raw.headers.items() if k.startswith("x-understudy")},
        "object": d["object"],
        "model": d["model"],
        "usage": d["usage"],
        "indices": [e["index"] for e in d["data"]],
        "objects": [e["object"] for e in d["data"]],
        "vectors": [e["embedding"] for e in d["data"]],
        "base64_strings": as_strings,
    }


def main():
    base_url, api_key = sys.argv[1], sys.argv[2]
    scenarios = json.load(sys.stdin)
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)
    results = []
    for sc in scenarios:
        try:
            results.append(create(client, sc["request"]))
        except openai.APIStatusError as e:
            results.append({"ok": False, "status": e.status_code, "error": type(e).__name__,
                            "code": e.code, "type": e.type, "message": e.message})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
