// Drives the Vercel AI SDK's default OpenAI provider (`createOpenAI({baseURL})`, whose
// `openai(model)` speaks the Responses API) against a running understudy.
//
// Usage: node ai_sdk_client.mjs BASE_URL API_KEY  (scenarios as a JSON list on stdin)
// Scenario: {"kind": "generate" | "stream", "prompt": str, "tools": bool,
//            "previous": N (continue scenario N's response via previousResponseId)}
//        or {"kind": "object" | "stream_object", "prompt": str}: generateObject /
//            streamObject with the `event` schema (a zod object), which the provider
//            sends as `text.format` json_schema.
// Prints a JSON list with one result per scenario. Any error the SDK reports (a
// thrown error, an `error` part in a stream) is a result with "ok": false.
import { createOpenAI } from "@ai-sdk/openai";
import { generateObject, generateText, stepCountIs, streamObject, streamText, tool } from "ai";
import { z } from "zod";

const [baseURL, apiKey] = process.argv.slice(2);
// What the SDK sent, per request: the types of its `input` items (so a test can
// tell that it really sent, say, an `item_reference`).
let sent = [];
async function recordingFetch(url, init) {
  try {
    const body = JSON.parse(init?.body ?? "null");
    if (Array.isArray(body?.input)) sent.push(body.input.map((i) => i.type ?? `role:${i.role}`));
  } catch {
    // not JSON: nothing to record
  }
  return fetch(url, init);
}
const openai = createOpenAI({ baseURL, apiKey, fetch: recordingFetch });

function tools(calls) {
  return {
    get_weather: tool({
      description: "Returns the current weather in a city.",
      inputSchema: z.object({ city: z.string() }),
      execute: async ({ city }) => {
        calls.push(city);
        return `18C and sunny in ${city}`;
      },
    }),
  };
}

function understudyHeaders(headers) {
  const out = {};
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (k.startsWith("x-understudy") || k === "x-request-id") out[k] = v;
  }
  return out;
}

function describe(e) {
  return {
    ok: false,
    error: e?.name ?? typeof e,
    message: String(e?.message ?? e),
    status: e?.statusCode ?? null,
    body: e?.responseBody ?? null,
  };
}

function options(sc, results, calls) {
  const opts = { model: openai("default"), prompt: sc.prompt, maxRetries: 0 };
  if (sc.tools) {
    opts.tools = tools(calls);
    opts.stopWhen = stepCountIs(4);
  }
  if (sc.previous !== undefined) {
    const prev = results[sc.previous]?.responseId;
    opts.providerOptions = { openai: { previousResponseId: prev } };
  }
  return opts;
}

function common(steps, calls) {
  return {
    steps: steps.length,
    toolCalls: steps.flatMap((s) => s.toolCalls.map((c) => ({ id: c.toolCallId, name: c.toolName, input: c.input }))),
    toolResults: steps.flatMap((s) => s.toolResults.map((r) => ({ id: r.toolCallId, output: r.output }))),
    executed: calls,
    warnings: steps.flatMap((s) => (s.warnings ?? []).map((w) => JSON.stringify(w))),
  };
}

async function generate(sc, results) {
  const calls = [];
  const r = await generateText(options(sc, results, calls));
  return {
    ok: true,
    text: r.text,
    finishReason: r.finishReason,
    usage: r.totalUsage ?? r.usage,
    responseId: r.providerMetadata?.openai?.responseId ?? null,
    headers: understudyHeaders(r.response?.headers),
    ...common(r.steps, calls),
  };
}

async function stream(sc, results) {
  const calls = [];
  const errors = [];
  const opts = options(sc, results, calls);
  opts.onError = ({ error }) => errors.push(error);
  const s = streamText(opts);
  const parts = [];
  let text = "";
  for await (const part of s.fullStream) {
    parts.push(part.type);
    if (part.type === "text-delta") text += part.text;
    if (part.type === "error") errors.push(part.error);
    if (parts.length > 10000) break; // bounded, whatever the proxy sends
  }
  if (errors.length) return { ...describe(errors[0]), parts: [...new Set(parts)], text };
  const steps = await s.steps;
  const meta = await s.providerMetadata;
  const response = await s.response;
  return {
    ok: true,
    text,
    finalText: await s.text,
    finishReason: await s.finishReason,
    usage: await s.totalUsage,
    responseId: meta?.openai?.responseId ?? null,
    headers: understudyHeaders(response?.headers),
    parts: [...new Set(parts)],
    ...common(steps, calls),
  };
}

// What generateObject / streamObject ask for.
const event = z.object({
  name: z.string(),
  date: z.string(),
  participants: z.array(z.string()),
});

function objectOptions(sc) {
  return { model: openai("default"), prompt: sc.prompt, schema: event, schemaName: "event", maxRetries: 0 };
}

async function object(sc) {
  const r = await generateObject(objectOptions(sc));
  return {
    ok: true,
    object: r.object,
    finishReason: r.finishReason,
    usage: r.usage,
    responseId: r.providerMetadata?.openai?.responseId ?? null,
    headers: understudyHeaders(r.response?.headers),
    warnings: (r.warnings ?? []).map((w) => JSON.stringify(w)),
  };
}

async function streamedObject(sc) {
  const errors = [];
  const s = streamObject({ ...objectOptions(sc), onError: ({ error }) => errors.push(error) });
  const partials = [];
  for await (const partial of s.partialObjectStream) {
    partials.push(partial);
    if (partials.length > 10000) break; // bounded, whatever the proxy sends
  }
  if (errors.length) return describe(errors[0]);
  const response = await s.response;
  return {
    ok: true,
    object: await s.object,
    partials: partials.length,
    finishReason: await s.finishReason,
    usage: await s.usage,
    headers: understudyHeaders(response?.headers),
  };
}

const KINDS = { generate, stream, object, stream_object: streamedObject };

async function main() {
  let input = "";
  for await (const chunk of process.stdin) input += chunk;
  const scenarios = JSON.parse(input);
  const results = [];
  for (const sc of scenarios) {
    sent = [];
    let result;
    try {
      const run = KINDS[sc.kind];
      if (!run) throw new Error(`unknown scenario kind ${sc.kind}`);
      result = await run(sc, results);
    } catch (e) {
      result = describe(e);
    }
    results.push({ ...result, sentInputTypes: sent });
  }
  process.stdout.write(JSON.stringify(results));
}

await main();
