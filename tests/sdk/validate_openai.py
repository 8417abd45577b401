"""Validates answers the proxy sent against OpenAI's published schemas
(fixtures/openai/schemas.json, extracted from its OpenAPI description).

stdin: a JSON array of {"label": str, "schema": str, "instance": any}, where schema
names one of the $defs (CreateChatCompletionResponse, CreateChatCompletionStreamResponse,
ErrorResponse). Prints one line per failure; exits 1 if any.

An optional argument names another schemas file under fixtures/openai/ (for the
Responses API: responses_schemas.json, with Response, ResponseStreamEvent,
ResponseItemList, ErrorResponse).
"""

import json
import pathlib
import sys

import jsonschema

ROOT = pathlib.Path(__file__).resolve().parents[2]
FILE = sys.argv[1] if len(sys.argv) > 1 else "schemas.json"
DEFS = json.loads((ROOT / "fixtures/openai" / FILE).read_text())["$defs"]


def explain(err):
    """The errors that say what is wrong. An anyOf / oneOf failure (a union such as
    ResponseStreamEvent) is explained by the branch that matched furthest, the one
    whose `type` matched, rather than by a dump of the whole instance."""
    if not err.context:
        return [err]
    branches = {}
    for c in err.context:
        branches.setdefault(c.relative_schema_path[0], []).append(c)
    here = len(err.absolute_path)

    def type_mismatch(errs):
        return any(
            e.validator in ("enum", "const")
            and len(e.absolute_path) == here + 1
            and e.absolute_path[-1] == "type"
            for e in errs
        )

    def depth(errs):
        return (not type_mismatch(errs), min(len(e.absolute_path) for e in errs), -len(errs))

    best = max(branches.values(), key=depth)
    return [leaf for c in best for leaf in explain(c)]


def main():
    cases = json.load(sys.stdin)
    failures = 0
    for case in cases:
        schema = {"$defs": DEFS, "$ref": "#/$defs/" + case["schema"]}
        validator = jsonschema.Draft202012Validator(schema)
        for err in validator.iter_errors(case["instance"]):
            failures += 1
            for leaf in explain(err):
                path = "/".join(str(p) for p in leaf.absolute_path)
                print(f"{case['label']}: {case['schema']} at /{path}: {leaf.message[:400]}")
    print(f"{len(cases)} documents checked, {failures} schema violations")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
