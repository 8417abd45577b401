"""Validates answers the proxy sent against OpenAI's published schemas
(fixtures/openai/schemas.json, extracted from its OpenAPI description).

stdin: a JSON array of {"label": str, "schema": str, "instance": any}, where schema
names one of the $defs (CreateChatCompletionResponse, CreateChatCompletionStreamResponse,
ErrorResponse). Prints one line per failure; exits 1 if any.
"""

import json
import pathlib
import sys

import jsonschema

ROOT = pathlib.Path(__file__).resolve().parents[2]
DEFS = json.loads((ROOT / "fixtures/openai/schemas.json").read_text())["$defs"]


def main():
    cases = json.load(sys.stdin)
    failures = 0
    for case in cases:
        schema = {"$defs": DEFS, "$ref": "#/$defs/" + case["schema"]}
        validator = jsonschema.Draft202012Validator(schema)
        for err in validator.iter_errors(case["instance"]):
            failures += 1
            path = "/".join(str(p) for p in err.absolute_path)
            print(f"{case['label']}: {case['schema']} at /{path}: {err.message}")
    print(f"{len(cases)} documents checked, {failures} schema violations")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
