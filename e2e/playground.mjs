// End-to-end test of the agentd playground: books an appointment through the page in headless
// Chromium (Debian's /usr/bin/chromium driven by playwright-core, no downloaded browsers).
//
//   node e2e/playground.mjs <base_url> <api_key> [org_id]
//
// Env: PLAYGROUND_SCREENSHOT=/path.png saves a screenshot after the booking;
//      CHROMIUM_PATH overrides the browser (default /usr/bin/chromium);
//      PLAYGROUND_KEEP_BOOKING=1 keeps the booking (by default an API key's booking is
//      cancelled at the end, so the test can run again on the same database).
// Prints `CONFIRMATION APPT-XXXXXX` and exits 0 on success; exits 1 with a message otherwise.

import { chromium } from "playwright-core";

const GLOBAL_TIMEOUT_MS = 60_000;
const TURN_TIMEOUT_MS = 20_000;
const FLOW = [
  "Hello, I need to book an appointment",
  "I need a general consultation",
  "Tomorrow at 2 PM",
  "John Doe, john@example.com, 555-1234",
  "yes",
];

const [baseUrl, apiKey, org = "demo"] = process.argv.slice(2);
if (!baseUrl || !apiKey) {
  console.error("usage: node e2e/playground.mjs <base_url> <api_key> [org_id]");
  process.exit(2);
}

let browser;
const fail = async (message) => {
  console.error(`FAIL: ${message}`);
  if (browser) await browser.close().catch(() => {});
  process.exit(1);
};

const watchdog = setTimeout(
  () => fail(`global timeout: no booking within ${GLOBAL_TIMEOUT_MS / 1000} s`),
  GLOBAL_TIMEOUT_MS,
);

async function main() {
  const started = Date.now();
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH || "/usr/bin/chromium",
    args: [
      "--headless",
      "--no-sandbox",
      "--disable-gpu",
      "--disable-background-networking",
      "--disable-component-update",
      "--disable-sync",
      "--no-first-run",
    ],
  });
  const page = await browser.newPage({ viewport: { width: 1000, height: 900 } });
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error") pageErrors.push(m.text());
  });
  const id = (name) => page.getByTestId(name);

  const res = await page.goto(new URL("/playground", baseUrl).href);
  if (!res || !res.ok()) throw new Error(`GET /playground answered ${res ? res.status() : "nothing"}`);

  await id("credential").fill(apiKey);
  await id("org").fill(org);
  await id("new-session").click();
  const session = await id("session").inputValue();
  if (!/^[0-9a-f-]{36}$/.test(session)) throw new Error(`"New session" gave no UUID: ${session}`);

  for (const [i, message] of FLOW.entries()) {
    await id("message").fill(message);
    await id("message").press("Enter");
    // Each turn ends with its assistant bubble marked done and Send enabled again.
    await page.waitForFunction(
      (n) => document.querySelectorAll('[data-role="assistant"][data-done="true"]').length >= n
        && !document.querySelector('[data-testid="send"]').disabled,
      i + 1,
      { timeout: TURN_TIMEOUT_MS },
    );
    if (await id("error").isVisible()) {
      throw new Error(`after "${message}": ${await id("error").innerText()}`);
    }
    const state = await id("state").getAttribute("data-state");
    console.error(`turn ${i + 1}: "${message}" -> ${state}`);
  }

  const state = await id("state").innerText();
  if (!state.includes("COMPLETE")) throw new Error(`state badge shows "${state}", not COMPLETE`);
  const calls = await page.locator('[data-testid="tool-call"]').count();
  if (calls < 1) throw new Error("no tool call was shown");
  const banner = id("confirmation");
  await banner.waitFor({ state: "visible", timeout: 5_000 });
  const text = await banner.innerText();
  const number = /APPT-[A-Z0-9]+/.exec(text);
  if (!number) throw new Error(`the confirmation banner shows no booking number: "${text}"`);
  if (pageErrors.length) throw new Error(`errors in the page: ${pageErrors.join(" | ")}`);

  const shot = process.env.PLAYGROUND_SCREENSHOT;
  if (shot) await page.screenshot({ path: shot, fullPage: true });

  // Free "tomorrow at 2 PM" again, so a second run on the same database books it too.
  if (apiKey.startsWith("ak_") && !process.env.PLAYGROUND_KEEP_BOOKING) {
    const res = await fetch(new URL(`/api/v1/appointments/${number[0]}/cancel`, baseUrl), {
      method: "POST",
      headers: { "X-API-Key": apiKey },
    });
    if (!res.ok) throw new Error(`cancelling ${number[0]} answered ${res.status}`);
  }

  await browser.close();
  console.error(`booked in ${Date.now() - started} ms with ${calls} tool call entries`);
  console.log(`CONFIRMATION ${number[0]}`);
  clearTimeout(watchdog);
}

main().catch((e) => fail(e && e.message ? e.message : String(e)));
