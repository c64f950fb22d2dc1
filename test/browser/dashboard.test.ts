import { existsSync, mkdirSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import path from "node:path";
import OpenAI from "openai";
import { chromium, type Browser, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it, onTestFailed } from "vitest";
import { ROOT } from "../../scripts/lib/stack.mjs";
import { newEventId, verifySignature } from "../../schema";
import { startStack, type Stack } from "../e2e/fixture";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const SHOTS = path.join(ROOT, "test-results/screenshots");
const hasChromium = existsSync(CHROMIUM);
if (!hasChromium && process.env.CI) throw new Error(`The dashboard tests need Chromium at ${CHROMIUM} (apt-get install -y chromium).`);
if (!hasChromium) console.warn(`Skipping the dashboard tests: no Chromium at ${CHROMIUM} (apt-get install -y chromium).`);

let stack: Stack;
let browser: Browser;
let page: Page;
let upstreamId: string;
const uiKeys = Array.from({ length: 4 }, (_, i) => `sk-ui-${i}-${crypto.randomUUID().replaceAll("-", "")}`);

async function shot(name: string) {
  await page.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
}

/** Sends `n` chat completions through the gateway with the given client key. */
async function traffic(clientKey: string, n: number) {
  const openai = new OpenAI({ baseURL: `${stack.url}/v1`, apiKey: clientKey, maxRetries: 0 });
  for (let i = 0; i < n; i++) await openai.chat.completions.create({ model: "mock-gpt", messages: [{ role: "user", content: `ui ${i}` }] });
}

/** Sends one request with a new client key as soon as the gateway knows it (within seconds of its creation). */
async function servedOnceKnown(clientKey: string) {
  await expect
    .poll(
      async () => {
        try {
          await traffic(clientKey, 1);
          return "served";
        } catch {
          return "not yet";
        }
      },
      { timeout: 15_000, interval: 500 },
    )
    .toBe("served");
}

/** Goes to a page of the dashboard (hash route), reloading so its data is fresh. */
async function open(route: string) {
  await page.goto(`${stack.url}/#/${route}`);
  await page.reload();
}

describe.skipIf(!hasChromium)("the dashboard in a real browser", () => {
  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    stack = await startStack(["mock-gpt"], 1);
    upstreamId = ((await stack.admin("GET", "/upstreams")) as { data: { id: string }[] }).data[0]!.id;
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
    });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 }, locale: "en-US" });
  });

  afterAll(async () => {
    await browser?.close();
    await stack?.stop();
  });

  it("opens for a logged-out visitor without a single error in the console", async () => {
    const errors: string[] = [];
    const onConsole = (m: { type(): string; text(): string }) => void (m.type() === "error" && errors.push(m.text()));
    const onResponse = (r: { status(): number; url(): string }) => void (r.status() >= 400 && errors.push(`${r.status()} ${r.url()}`));
    page.on("console", onConsole);
    page.on("response", onResponse);
    await page.goto(stack.url);
    await page.waitForSelector("input[type=password]");
    // The session probe has answered by now (the form shows once it has); give late console messages a moment.
    await page.waitForLoadState("networkidle");
    page.off("console", onConsole);
    page.off("response", onResponse);
    expect(errors).toEqual([]);
  });

  it("shows an error for a wrong password, then logs in", async () => {
    await page.goto(stack.url);
    await page.fill("input[type=password]", "not the password");
    await page.click("button[type=submit]");
    await expect.poll(() => page.textContent("[role=alert]")).toContain("Wrong password");
    await shot("login");
    await page.fill("input[type=password]", stack.secrets.ADMIN_PASSWORD);
    await page.click("button[type=submit]");
    await page.waitForSelector("[data-testid=stat-rpm]");
  });

  it("batch-adds keys with mixed separators and shows the counts", async () => {
    await open("keys");
    await page.selectOption("select[name=upstream]", upstreamId);
    await page.fill("textarea[name=keys]", `${uiKeys[0]}, ${uiKeys[1]}\n${uiKeys[2]}; ${uiKeys[3]} ${uiKeys[0]}\nshort`);
    await page.click(".add-keys button[type=submit]");
    await expect.poll(() => page.textContent("[data-testid=add-result]")).toBe("Added 4, duplicates 1, invalid 1.");
    await expect.poll(() => page.textContent(".invalid")).toContain("Line 3");
  });

  it("imports the old pool's tokens JSON, keeping enabled state and balance", async () => {
    await open("keys");
    await page.click("details summary");
    const tokens = [
      { key: `sk-old-${crypto.randomUUID()}`, enabled: true, balance: 7.5, usageCount: 3 },
      { key: `sk-old-${crypto.randomUUID()}`, enabled: false, balance: null },
    ];
    await page.fill("textarea[name=seed]", JSON.stringify(tokens));
    await page.click("details button[type=submit]");
    await expect.poll(() => page.textContent("details [role=status]")).toBe("Imported 2 key(s) (1 disabled, 1 with a balance); 0 already in the pool.");
    // The imported keys must not take this suite's traffic: delete them through the API.
    const listed = (await stack.admin("GET", "/keys?q=sk-ol&limit=10")) as { data: { id: string }[] };
    await stack.admin("POST", "/keys/batch", { action: "delete", ids: listed.data.map((k) => k.id) });
  });

  it("moves RPM and the per-minute chart when traffic flows", { timeout: 90_000 }, async () => {
    // RPM counts the previous minute only by the share of it still inside the last 60 s: requests sent
    // late in a minute fall below 12 while the page is polled. Sent in a minute's first half, all of
    // them stay in the current minute for the polls below.
    const intoMinute = Date.now() % 60_000;
    if (intoMinute > 30_000) await new Promise((r) => setTimeout(r, 60_000 - intoMinute + 500));
    await traffic(stack.clientKey, 12);
    await open("overview");
    await expect
      .poll(async () => Number((await page.textContent("[data-testid=stat-rpm]"))?.replace(/\D/g, "")), { timeout: 15_000 })
      .toBeGreaterThanOrEqual(12);
    await expect
      .poll(async () => Number(await page.getAttribute("[data-testid=chart-requests]", "data-points")), { timeout: 15_000 })
      .toBeGreaterThanOrEqual(12);
    await shot("overview");
  });

  it("shows a key that answers 429 as cooling and one that answers 401 as dead", { timeout: 90_000 }, async () => {
    const [limited, revoked] = [uiKeys[0]!, uiKeys[1]!];
    stack.mock.setKeyBehavior(limited, { mode: "rate_limit", retryAfterSeconds: 120 });
    stack.mock.setKeyBehavior(revoked, { mode: "unauthorized" });
    onTestFailed(() => console.log(`wrangler's log, last lines:\n${stack.log().slice(-4_000)}`));
    // Enough traffic that both keys are tried at least once since they turned bad (earlier tests'
    // traffic may have used them while they answered; bounded by time: under load the gateway may
    // still be serving the snapshot from before these keys were added).
    const triedSince = (key: string, before: number) => (stack.mock.stats.byKey[key] ?? 0) > before;
    const [limitedBefore, revokedBefore] = [stack.mock.stats.byKey[limited] ?? 0, stack.mock.stats.byKey[revoked] ?? 0];
    const until = Date.now() + 30_000;
    while (Date.now() < until && !(triedSince(limited, limitedBefore) && triedSince(revoked, revokedBefore))) await traffic(stack.clientKey, 1);
    expect(triedSince(limited, limitedBefore)).toBe(true);
    expect(triedSince(revoked, revokedBefore)).toBe(true);
    const badge = (key: string) => page.getAttribute(`tr[data-key="${key.slice(0, 5)}…${key.slice(-4)}"] [data-state]`, "data-state");
    await expect
      .poll(
        async () => {
          await open("keys");
          await page.waitForSelector("[data-testid=keys-table] tbody tr[data-key]");
          return [await badge(limited), await badge(revoked)];
        },
        { timeout: 20_000, interval: 1_000 },
      )
      .toEqual(["cooling", "dead"]);
    await shot("keys");
  });

  it("disables a key from the table, and no more traffic goes to it", async () => {
    onTestFailed(() => console.log(`wrangler's log, last lines:\n${stack.log().slice(-4_000)}`));
    const key = uiKeys[2]!;
    const masked = `${key.slice(0, 5)}…${key.slice(-4)}`;
    await open("keys");
    await page.check(`tr[data-key="${masked}"] input[type=checkbox]`);
    await page.click(".selection button:has-text('Disable')");
    await expect.poll(() => page.getAttribute(`tr[data-key="${masked}"] [data-state]`, "data-state")).toBe("disabled");
    // The consumer republishes the snapshot within a couple of seconds; the gateway looks for it
    // on its next request (serving the snapshot it has meanwhile), so let a few requests through first.
    await new Promise((r) => setTimeout(r, 4_000));
    await traffic(stack.clientKey, 3);
    await new Promise((r) => setTimeout(r, 500));
    const before = stack.mock.stats.byKey[key] ?? 0;
    await traffic(stack.clientKey, 15);
    expect(stack.mock.stats.byKey[key] ?? 0).toBe(before);
  });

  it("creates a client key that works at once", async () => {
    await open("client-keys");
    await page.fill("form input[name=name]", "browser test");
    await page.click("form button[type=submit]");
    const key = (await page.textContent("[data-testid=new-client-key]"))!.trim();
    expect(key).toMatch(/^kp-/);
    await shot("client-keys");
    await servedOnceKnown(key);
  });

  it("sets an upstream's limits, and shows each key's use of them as bars and the pool's headroom", { timeout: 90_000 }, async () => {
    onTestFailed(() => console.log(`wrangler's log, last lines:\n${stack.log().slice(-4_000)}`));
    await open("upstreams");
    await page.click("tbody details summary");
    // Far above what the tests before send in a minute (the near-limit filter below must find no key), whatever their pace.
    await page.fill("[data-testid=limits-form] input[name=rpm]", "10000");
    await page.fill("[data-testid=limits-form] input[name=rpd]", "1000");
    await page.click("[data-testid=limits-form] button[type=submit]");
    await expect.poll(() => page.textContent("tbody details summary"), { timeout: 15_000 }).toBe("10,000 RPM · 1,000 RPD");
    await traffic(stack.clientKey, 5);
    // Each key's RPD bar measures against 1,000, and together they count today's traffic once the consumer publishes it.
    const meters = async () => {
      await open("keys");
      await page.waitForSelector("[data-testid=keys-table] tbody tr[data-key]");
      return page.$$eval("[data-limit=rpd] [role=meter]", (els) =>
        els.map((e) => [Number(e.getAttribute("aria-valuenow")), Number(e.getAttribute("aria-valuemax"))]),
      );
    };
    await expect
      .poll(
        async () => {
          const m = await meters();
          // The pool's usage is published at most once a second; the last of a burst, a second after it.
          return m.length > 0 && m.every(([, max]) => max === 1_000) && m.reduce((n, [now]) => n + now!, 0) >= 5;
        },
        { timeout: 20_000, interval: 1_000 },
      )
      .toBe(true);
    await shot("keys-capacity");
    // No key has used half of a limit: the near-limit filter finds none.
    await page.selectOption("select[aria-label='Near a limit']", "0.5");
    await expect.poll(() => page.textContent("[data-testid=keys-table] tbody")).toContain("No keys match.");
    await open("overview");
    await expect
      .poll(() => page.textContent("[data-testid=headroom]"), { timeout: 15_000 })
      .toMatch(/of [\d,]+ RPM free · [\d,]+ of [\d,]+ requests left today/);
    await shot("overview-headroom");
    await stack.admin("PATCH", `/upstreams/${upstreamId}`, { limits: {} });
  });

  it("prices a model, and shows spend on the overview and a client key's page with its quotas", { timeout: 90_000 }, async () => {
    onTestFailed(() => console.log(`wrangler's log, last lines:\n${stack.log().slice(-4_000)}`));
    await open("prices");
    await page.fill("form[aria-label='Set a price'] input[name=model]", "mock-gpt");
    await page.fill("form[aria-label='Set a price'] input[name=input]", "2.5");
    await page.fill("form[aria-label='Set a price'] input[name=output]", "10");
    await page.click("form[aria-label='Set a price'] button[type=submit]");
    await expect.poll(() => page.textContent("[data-testid=prices] tbody"), { timeout: 15_000 }).toContain("mock-gpt");
    await shot("prices");
    const { id, key } = (await stack.admin("POST", "/client-keys", { name: "budgeted team", rpdLimit: 50, dailyBudget: 1 })) as { id: string; key: string };
    await servedOnceKnown(key);
    await traffic(key, 2);
    await open("client-keys");
    await page.click(`a[href='#/client-key/${id}']`);
    // The quotas as the pool counts them, and the spend the consumer priced.
    await expect
      .poll(() => page.$eval("[data-quota=rpd] [role=meter]", (e) => [e.getAttribute("aria-valuenow"), e.getAttribute("aria-valuemax")]), { timeout: 20_000 })
      .toEqual(["3", "50"]);
    await expect.poll(() => page.getAttribute("[data-quota=daily_budget] [role=meter]", "aria-valuemax")).toBe("1000000");
    await expect.poll(async () => (await page.textContent("[data-testid=client-spend-today]"))?.trim(), { timeout: 15_000 }).toMatch(/^\$0\.0*[1-9]\d*$/);
    await expect.poll(() => page.textContent("[data-testid=client-requests-today]")).toBe("3");
    await shot("client-key");
    await open("overview");
    await expect.poll(async () => (await page.textContent("[data-testid=stat-spend-today]"))?.trim(), { timeout: 15_000 }).toMatch(/^\$\d/);
    await expect.poll(() => page.textContent("[data-testid='breakdown-By client key'] tbody")).toContain("budgeted team");
    await shot("overview-spend");
  });

  it("finds a request that failed over in the request log, with both attempts on its timeline", { timeout: 90_000 }, async () => {
    onTestFailed(() => console.log(`wrangler's log, last lines:\n${stack.log().slice(-4_000)}`));
    // An upstream of its own with two keys, one refusing with a 429: a request that tries it first goes on to the other.
    const [refusing, serving] = ["refusing", "serving"].map((name) => `sk-log-${name}-${crypto.randomUUID().replaceAll("-", "")}`);
    const upstream = (await stack.admin("POST", "/upstreams", { name: "failover", baseUrl: stack.mock.baseUrl, models: ["mock-failover"] })) as { id: string };
    await stack.admin("POST", "/keys", { upstreamId: upstream.id, text: `${refusing}\n${serving}` });
    stack.mock.setKeyBehavior(refusing!, { mode: "rate_limit", retryAfterSeconds: 60 });
    const { id, key } = (await stack.admin("POST", "/client-keys", { name: "log reader" })) as { id: string; key: string };
    const chat = () =>
      fetch(`${stack.url}/v1/chat/completions`, {
        method: "POST",
        headers: { authorization: `Bearer ${key}`, "content-type": "application/json" },
        body: JSON.stringify({ model: "mock-failover", messages: [{ role: "user", content: "hi" }] }),
      });
    // Until the refusing key has been tried once (then it cools), each request starts on either key.
    let failedOver: string | null = null;
    let sent = 0;
    const deadline = Date.now() + 30_000;
    while (failedOver === null && Date.now() < deadline) {
      const res = await chat();
      await res.arrayBuffer();
      if (res.status !== 200) {
        await new Promise((r) => setTimeout(r, 300)); // the gateway does not know the new keys yet
        continue;
      }
      sent++;
      if (res.headers.get("x-keypool-attempts") === "2") failedOver = res.headers.get("x-keypool-request-id");
    }
    expect(failedOver).not.toBeNull();
    // The page shows what the log holds when it opens (live mode follows, below): wait for the consumer to fold them.
    await expect
      .poll(async () => ((await stack.admin("GET", `/requests?clientKeyId=${id}`)) as { data: unknown[] }).data.length, { timeout: 15_000 })
      .toBe(sent);
    await open(`requests/clientKeyId=${id}`);
    await expect.poll(() => page.$$eval("[data-testid=requests-table] tbody tr[data-request]", (rows) => rows.length), { timeout: 15_000 }).toBe(sent);
    await shot("requests");
    await page.click(`tr[data-request='${failedOver}'] td:first-child a`);
    await expect.poll(() => page.$$eval("[data-testid=attempts-table] tbody tr", (rows) => rows.length), { timeout: 15_000 }).toBe(2);
    const attempts = await page.$$eval("[data-testid=attempts-table] tbody tr", (rows) => rows.map((r) => r.textContent ?? ""));
    expect(attempts[0]).toContain("429 rate_limited");
    expect(attempts[1]).toContain("200 ok");
    expect(await page.textContent("body")).not.toContain(refusing!.slice(7));
    await shot("request-detail");
    // Live mode picks up a new request without a reload.
    await open(`requests/clientKeyId=${id}`);
    await page.check("input[name=live]");
    await (await chat()).arrayBuffer();
    await expect.poll(() => page.$$eval("[data-testid=requests-table] tbody tr[data-request]", (rows) => rows.length), { timeout: 15_000 }).toBe(sent + 1);
    // An id the log does not hold: the page offers the event archive, whose search says what it read.
    await open(`requests/requestId=${newEventId(Date.now() - 1_000)}`);
    await page.click("[data-testid=requests-in-archive]", { timeout: 15_000 });
    await expect.poll(() => page.textContent("[role=alert]"), { timeout: 15_000 }).toMatch(/nor do the \d+ batches the event archive holds from/);
  });

  it("adds a webhook on the Alerts page, sends a signed test, and opens /metrics with a scrape token", { timeout: 90_000 }, async () => {
    const got: { headers: Record<string, string>; body: string }[] = [];
    const receiver = createServer((req, res) => {
      let body = "";
      req.on("data", (d: Buffer) => (body += d.toString("utf8")));
      req.on("end", () => {
        got.push({ headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)])), body });
        res.end("ok");
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
    try {
      const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hooks/keypool-secret-path`;
      await open("alerts");
      await page.fill("form[aria-label='Add destination'] input[name=name]", "ops webhook");
      await page.fill("form[aria-label='Add destination'] input[name=url]", url);
      await page.click("form[aria-label='Add destination'] button[type=submit]");
      const secret = (await page.textContent("[data-testid=secret-once] code", { timeout: 15_000 }))!.trim();
      expect(secret).toMatch(/^whsec_/);
      const row = page.locator("[data-testid=destinations] tbody tr", { hasText: "ops webhook" });
      // The URL is shown masked: its path is a secret.
      expect(await row.textContent()).not.toContain("keypool-secret-path");
      await row.getByRole("button", { name: "Send a test" }).click();
      await expect.poll(() => page.textContent("[data-testid=alerts-notice]"), { timeout: 15_000 }).toContain("the receiver answered 200");
      expect(got).toHaveLength(1);
      expect(await verifySignature(secret, got[0]!.headers["keypool-signature"]!, got[0]!.headers["keypool-timestamp"]!, got[0]!.body, Date.now() / 1000)).toBe(
        true,
      );
      await expect.poll(() => page.textContent("[data-testid=alert-history] tbody"), { timeout: 15_000 }).toContain("ops webhook: sent (200)");
      // Rules: one kind switched off, saved, and still off after a reload.
      await page.getByRole("checkbox", { name: "Every key of a model is cooling" }).uncheck();
      await page.click("form[aria-label='What to alert on'] button[type=submit]");
      await expect.poll(() => page.textContent("[data-testid=alerts-notice]")).toContain("Alert rules saved");
      await open("alerts");
      expect(await page.getByRole("checkbox", { name: "Every key of a model is cooling" }).isChecked()).toBe(false);
      // The scrape token: shown once, and it opens /metrics without a session.
      await page.getByRole("button", { name: "Create a scrape token" }).click();
      const token = (await page.textContent("[data-testid=secret-once] code", { timeout: 15_000 }))!.trim();
      await shot("alerts");
      expect((await fetch(`${stack.url}/metrics`)).status).toBe(401);
      const metrics = await fetch(`${stack.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toMatch(/^keypool_requests_total\{upstream="[^"]+",model="mock-gpt"\} \d+$/m);
    } finally {
      receiver.close();
    }
  });

  it("switches the language to Simplified Chinese", async () => {
    await open("overview");
    await page.selectOption("select[aria-label=Language]", "zh");
    await expect.poll(() => page.textContent("header nav a[aria-current=page]")).toBe("概览");
    for (const route of ["upstreams", "requests", "prices", "alerts", "settings", "audit"]) {
      await open(route);
      await page.waitForTimeout(500);
      await shot(route);
    }
    await page.selectOption("header select", "en");
  });
});
