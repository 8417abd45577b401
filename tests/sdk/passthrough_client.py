"""Drives the official `openai` SDK's non-chat surface against understudy's
`[passthrough]`: moderations, audio uploads and binary speech, files.

Usage: passthrough_client.py BASE_URL API_KEY  (scenarios as a JSON list on stdin)
Prints a JSON list with one result per scenario. Parsed answers are validated
against the SDK's pydantic types, so a wrong shape fails loudly.
"""
import json
import sys

import openai
from openai.types import FileDeleted, FileObject, ModerationCreateResponse
from openai.types.audio import Transcription


def understudy_headers(raw):
    return {k: v for k, v in raw.headers.items() if k.startswith("x-understudy")}


def moderation(client, sc):
    raw = client.moderations.with_raw_response.create(**sc["request"])
    r = raw.parse()
    ModerationCreateResponse.model_validate(r.to_dict())
    return {"ok": True, "headers": understudy_headers(raw), "id": r.id, "model": r.model,
            "flagged": [m.flagged for m in r.results],
            "harassment": r.results[0].categories.harassment}


def transcription(client, sc):
    with open(sc["file"], "rb") as f:
        r = client.audio.transcriptions.create(file=("clip.mp3", f, "audio/mpeg"), **sc["request"])
    Transcription.model_validate(r.to_dict())
    return {"ok": True, "text": r.text}


def speech(client, sc):
    with client.audio.speech.with_streaming_response.create(**sc["request"]) as r:
        r.stream_to_file(sc["out"])
        return {"ok": True, "content_type": r.headers.get("content-type"),
                "headers": understudy_headers(r)}


def files_list(client, sc):
    page = client.files.list(**sc["request"])
    for f in page.data:
        FileObject.model_validate(f.to_dict())
    return {"ok": True, "ids": [f.id for f in page.data], "has_more": page.has_more}


def files_delete(client, sc):
    r = client.files.delete(sc["file_id"])
    FileDeleted.model_validate(r.to_dict())
    return {"ok": True, "id": r.id, "deleted": r.deleted}


KINDS = {"moderation": moderation, "transcription": transcription, "speech": speech,
         "files_list": files_list, "files_delete": files_delete}


def main():
    base_url, api_key = sys.argv[1], sys.argv[2]
    scenarios = json.load(sys.stdin)
    client = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)
    results = []
    for sc in scenarios:
        try:
            results.append(KINDS[sc["kind"]](client, sc))
        except openai.APIStatusError as e:
            results.append({"ok": False, "status": e.status_code, "code": e.code,
                            "type": e.type, "message": e.message})
        except openai.APIError as e:
            results.append({"ok": False, "status": None, "message": str(e)})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    main()
