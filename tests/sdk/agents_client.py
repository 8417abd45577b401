"""Drives openai-agents (`Runner` with a function tool, its default Responses model)
against a running understudy.

Usage: agents_client.py BASE_URL API_KEY  (scenarios as a JSON list on stdin)
Each scenario: {"input": str, "stream": bool, "auto_previous_response_id": bool,
"previous_response_id": str | "$N" (the last response id of scenario N)}.
Prints a JSON list with one result per scenario: the final output, the cities the
tool was called with, the run's item types and the ids of the responses it got.
Tracing is off: nothing leaves this machine.
"""
import asyncio
import json
import sys

import openai
from agents import (Agent, Runner, function_tool, set_default_openai_api,
                    set_default_openai_client, set_tracing_disabled)

CALLS = []


@function_tool
def get_weather(city: str) -> str:
    """Returns the current weather in a city."""
    CALLS.append(city)
    return f"18C and sunny in {city}"


def agent():
    return Agent(
        name="weather",
        instructions="You answer weather questions with the get_weather tool.",
        model="default",
        tools=[get_weather],
    )


async def run(sc, results):
    kwargs = {"max_turns": 4}
    prev = sc.get("previous_response_id")
    if isinstance(prev, str) and prev.startswith("$"):
        prev = results[int(prev[1:])]["last_response_id"]
    if prev:
        kwargs["previous_response_id"] = prev
    if sc.get("auto_previous_response_id"):
        kwargs["auto_previous_response_id"] = True
    del CALLS[:]
    events = []
    if sc.get("stream"):
        result = Runner.run_streamed(agent(), sc["input"], **kwargs)
        async for ev in result.stream_events():
            events.append(ev.type)
            if len(events) > 10000:  # bounded, whatever the proxy sends
                break
    else:
        result = await Runner.run(agent(), sc["input"], **kwargs)
    return {
        "ok": True,
        "final_output": result.final_output,
        "tool_calls": list(CALLS),
        "items": [item.type for item in result.new_items],
        "response_ids": [r.response_id for r in result.raw_responses],
        "last_response_id": result.last_response_id,
        "stream_event_types": sorted(set(events)),
    }


async def main():
    base_url, api_key = sys.argv[1], sys.argv[2]
    scenarios = json.load(sys.stdin)
    client = openai.AsyncOpenAI(base_url=base_url, api_key=api_key, max_retries=0, timeout=30)
    set_default_openai_client(client, use_for_tracing=False)
    set_default_openai_api("responses")
    set_tracing_disabled(True)
    results = []
    for sc in scenarios:
        try:
            results.append(await run(sc, results))
        except Exception as e:  # report, so the Rust test shows what the client said
            results.append({"ok": False, "error": type(e).__name__, "message": str(e)})
    json.dump(results, sys.stdout)


if __name__ == "__main__":
    asyncio.run(main())
