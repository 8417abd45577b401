// Opens the proxy's /dashboard in headless Chromium (Debian's package), waits until
// it shows a quiet proxy, then sends the traffic it is given (from Node, not the
// page) and waits, bounded, until the same page — never reloaded — shows what the
// test expects; then saves a screenshot.
//
//   node dashboard.mjs DASHBOARD_URL SCREENSHOT_PATH < expectations.json
//
// expectations: { lead, lead_target, reason, cooling_target, odd_route,
//                 traffic: { url, body, count } }
// Prints {"attempts": [x-understudy-attempts of each request], "text": <the page's
// visible text>, "xss": <whether a route name ran as markup>, "loads": <page loads>}
// on success; on failure saves the screenshot anyway, prints the error and the page
// text to stderr, and exits 1.
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync, existsSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";

const WAIT_MS = 30_000;
const [url, shot] = process.argv.slice(2);
const chromiumPath = process.env.UNDERSTUDY_TEST_CHROMIUM || "/usr/bin/chromium";
if (!existsSync(chromiumPath)) {
  console.error(`${chromiumPath} is missing: run scripts/test.sh, which installs Debian's chromium`);
  process.exit(1);
}

let input = "";
for await (const chunk of process.stdin) input += chunk;
const want = JSON.parse(input);

const profile = mkdtempSync(join(tmpdir(), "understudy-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: chromiumPath,
  headless: true,
  viewport: { width: 1440, height: 900 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});

// Each wait is one condition on the rendered DOM (what an operator sees), not on the
// page's script state.
const checks = [
  ["the lead's circuit shows open", (w) =>
    document.querySelector(`tr[data-provider="${CSS.escape(w.lead)}"] td.circuit[data-circuit="open"]`) !== null],
  ["a failed attempt on the lead with its reason, failed over", (w) =>
    [...document.querySelectorAll("#failures tr")].some((tr) =>
      tr.getAttribute("data-target") === w.lead_target &&
      tr.textContent.includes(w.reason) && tr.textContent.includes("failed over"))],
  ["the route marks the lead skipped (circuit open)", (w) =>
    document.querySelector(`#routes .chip[data-target="${CSS.escape(w.lead_target)}"][data-state="circuit_open"]`) !== null],
  ["the rate-limited target shows cooling", (w) =>
    document.querySelector(`#routes .chip[data-target="${CSS.escape(w.cooling_target)}"][data-state="cooling"]`) !== null],
  ["the reload history shows a failed and a good reload", () => {
    const text = document.getElementById("reloads").textContent;
    return text.includes("error") && text.includes("applied");
  }],
  ["the odd route name shows as text", (w) =>
    [...document.querySelectorAll("#routes tr")].some((tr) => tr.getAttribute("data-route") === w.odd_route &&
      tr.querySelector("td").textContent === w.odd_route)],
];

const quiet = ["a quiet proxy: the lead's circuit closed, no failed attempt", (w) =>
  document.querySelector(`tr[data-provider="${CSS.escape(w.lead)}"] td.circuit[data-circuit="closed"]`) !== null &&
  document.getElementById("failures").textContent.includes("no failed attempts")];

async function waitFor([what, cond]) {
  try {
    await page.waitForFunction(cond, want, { timeout: WAIT_MS, polling: 100 });
  } catch (e) {
    throw new Error(`the page never showed: ${what} (${e.message.split("\n")[0]})`);
  }
}

const page = await context.newPage();
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(String(e)));
let loads = 0;
page.on("load", () => { loads += 1; });
const attempts = [];
let failed = null;
try {
  await page.goto(url, { timeout: WAIT_MS });
  await waitFor(quiet);
  for (let i = 0; i < want.traffic.count; i++) {
    const resp = await fetch(want.traffic.url, {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify(want.traffic.body), signal: AbortSignal.timeout(WAIT_MS),
    });
    await resp.arrayBuffer();
    attempts.push(resp.headers.get("x-understudy-attempts"));
  }
  for (const check of checks) {
    await waitFor(check);
  }
} catch (e) {
  failed = e;
}
mkdirSync(dirname(shot), { recursive: true });
await page.screenshot({ path: shot, fullPage: true });
const text = await page.evaluate(() => document.body.innerText);
const xss = await page.evaluate(() => window.__understudy_xss === true ||
  document.querySelector("#routes img, #routes b, #routes script") !== null);
await context.close();
rmSync(profile, { recursive: true, force: true });
if (failed || pageErrors.length > 0) {
  console.error(failed ? failed.message : `script errors on the page: ${pageErrors.join("; ")}`);
  console.error(`--- page text ---\n${text}`);
  process.exit(1);
}
console.log(JSON.stringify({ attempts, text, xss, loads }));
