import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { pruneBodies } from "../../stats-consumer/storage/bodies";
import { newEventId, type RequestDetail, type RequestPage } from "../../schema";
import { FAKE_BASE_URL, FAKE_SSE, FAKE_USAGE, installFakeUpstream } from "./fake-upstream";
import { admin, adminToken, chatBody, createPool, forgetSnapshot, gateway, resetAfterEach, waitFor, waitForRollup, waitForSnapshot } from "./helpers";

const uniqueKey = (label: string) => `sk-${label}-${crypto.randomUUID().replaceAll("-", "")}`;
const masked = (k: string) => `${k.slice(0, 5)}…${k.slice(-4)}`;
const fakes = resetAfterEach(afterEach);

async function chat(clientKey: string, model: string, userAgent = "request-log-test/1.0"): Promise<Response> {
  const res = await gateway("/v1/chat/completions", {
    method: "POST",
    headers: { authorization: `Bearer ${clientKey}`, "content-type": "application/json", "user-agent": userAgent },
    body: chatBody(model),
  });
  return new Response(await res.arrayBuffer(), res);
}

/** The log's page for a filter, once it holds `n` requests. */
function pageWhen(query: string, n: number): Promise<RequestPage> {
  return waitFor(async () => {
    const page = await admin<RequestPage>("GET", `/requests?${query}`);
    return page.body.data.length >= n ? page.body : undefined;
  }, `the request log to hold ${n} request(s) for ${query}`);
}

describe("the request log", () => {
  it("records a request that failed over: both attempts in order, the refusal's message redacted, the answer's key and usage", async () => {
    const [limited, serving] = [uniqueKey("limited"), uniqueKey("serving")];
    const pool = await createPool(FAKE_BASE_URL, [limited, serving]);
    const fake = installFakeUpstream({
      // The refusal echoes the key, as some providers do: the log must not keep it.
      [limited]: () =>
        new Response(JSON.stringify({ error: { message: `Rate limit reached for ${limited} on requests per min`, type: "rate_limit_error" } }), {
          status: 429,
          headers: { "content-type": "application/json", "retry-after": "30" },
        }),
    });
    fakes.set(fake.restore);
    // Priced, so the record's cost is something the archive's reading must get right too.
    expect((await admin("PUT", "/prices", { model: pool.model, input: 2.5, output: 10 })).status).toBe(200);
    // Until the limited key has been tried once, a request may land on either; keep going until one failed over.
    let requestId: string | null = null;
    for (let i = 0; i < 20 && requestId === null; i++) {
      const res = await chat(pool.clientKey, pool.model);
      expect(res.status).toBe(200);
      if (res.headers.get("x-keypool-attempts") === "2") requestId = res.headers.get("x-keypool-request-id");
    }
    expect(requestId).not.toBeNull();
    const page = await pageWhen(`requestId=${requestId}`, 1);
    expect(page.data[0]).toMatchObject({
      requestId,
      clientKeyId: pool.clientKeyId,
      clientName: "test client",
      model: pool.model,
      endpoint: "/chat/completions",
      stream: false,
      status: 200,
      outcome: "ok",
      attempts: 2,
      keyMasked: masked(serving),
      upstreamId: pool.upstreamId,
      tokens: { prompt: FAKE_USAGE.prompt_tokens, completion: FAKE_USAGE.completion_tokens, total: FAKE_USAGE.total_tokens, source: "upstream" },
      userAgent: "request-log-test/1.0",
      // No address unless the logClientIp setting asks for one.
      clientIp: null,
    });
    const detail = await admin<RequestDetail>("GET", `/requests/${requestId}`);
    expect(detail.status).toBe(200);
    expect(detail.body.attemptList.map((a) => [a.attempt, a.keyMasked, a.status, a.outcome])).toEqual([
      [1, masked(limited), 429, "rate_limited"],
      [2, masked(serving), 200, "ok"],
    ]);
    const refusal = detail.body.attemptList[0]!.error!;
    expect(refusal).toContain("Rate limit reached for [redacted]");
    expect(JSON.stringify(detail.body)).not.toContain(limited.slice(3, 20));
    expect(detail.body.latencyMs).toBeGreaterThanOrEqual(detail.body.attemptList[1]!.latencyMs);
    // Found by the key of either attempt, and by its outcome; not by another.
    expect((await admin<RequestPage>("GET", `/requests?keyId=${await keyId(pool.upstreamId, limited)}&limit=500`)).body.data.map((r) => r.requestId)).toContain(
      requestId,
    );
    expect((await admin<RequestPage>("GET", `/requests?requestId=${requestId}&outcome=rate_limited`)).body.data).toHaveLength(0);
    expect((await admin<RequestPage>("GET", `/requests?requestId=${requestId}&status=2xx&stream=false`)).body.data).toHaveLength(1);
    expect((await admin<{ error: { param: string } }>("GET", "/requests?status=abc")).body.error.param).toBe("status");
    // Past the log's retention (its rows deleted), the same record is read from the event archive.
    expect(detail.body).toMatchObject({ source: "log", costMicros: expect.any(Number) });
    expect(detail.body.costMicros).toBeGreaterThan(0);
    await env.DB.batch([
      env.DB.prepare("DELETE FROM request_log WHERE request_id = ?1").bind(requestId),
      env.DB.prepare("DELETE FROM request_attempts WHERE request_id = ?1").bind(requestId),
    ]);
    const archived = await admin<RequestDetail>("GET", `/requests/${requestId}`);
    expect(archived.status).toBe(200);
    expect(archived.body).toEqual({ ...detail.body, source: "archive" });
  });

  it("answers 404 for a request neither the log nor the archive holds, saying what it searched", async () => {
    const unknown = await admin<{ error: { message: string; code: string } }>("GET", `/requests/${newEventId(Date.now() - 5_000)}`);
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.code).toBe("request_not_found");
    expect(unknown.body.error.message).toMatch(
      /it keeps every request for 7 days\), nor do the \d+ batches the event archive holds from \S+ to \S+ \((all read|\d+ read, the others' filters ruling it out)\)\.$/,
    );
    const foreign = await admin<{ error: { message: string; code: string } }>("GET", "/requests/no-such-request");
    expect(foreign.status).toBe(404);
    expect(foreign.body.error).toMatchObject({ code: "request_not_found" });
    expect(foreign.body.error.message).toContain("searched only by the time a request id the gateway made carries (a UUIDv7)");
  });

  it("pages newest first with a cursor, filters by client, model and latency, and exports NDJSON and CSV", async () => {
    const pool = await createPool(FAKE_BASE_URL, [uniqueKey("paged")]);
    fakes.set(installFakeUpstream({}).restore);
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await chat(pool.clientKey, pool.model, i === 0 ? '=cmd|" /C calc"!A0' : "t")).headers.get("x-keypool-request-id")!);
    await pageWhen(`clientKeyId=${pool.clientKeyId}`, 5);
    const seen: string[] = [];
    let cursor: string | null = "";
    while (cursor !== null) {
      const page: RequestPage = (
        await admin<RequestPage>("GET", `/requests?clientKeyId=${pool.clientKeyId}&model=${pool.model}&limit=2${cursor ? `&cursor=${cursor}` : ""}`)
      ).body;
      expect(page.data.length).toBeLessThanOrEqual(2);
      seen.push(...page.data.map((r) => r.requestId));
      cursor = page.nextCursor;
    }
    expect(seen).toEqual([...ids].reverse());
    expect((await admin<RequestPage>("GET", `/requests?clientKeyId=${pool.clientKeyId}&minLatencyMs=600000`)).body.data).toHaveLength(0);
    const token = await adminToken();
    const ndjson = await gateway(`/admin/api/requests/export?clientKeyId=${pool.clientKeyId}`, { headers: { authorization: `Bearer ${token}` } });
    expect(ndjson.headers.get("content-type")).toBe("application/x-ndjson");
    const lines = (await ndjson.text()).trim().split("\n");
    expect(lines.map((l) => (JSON.parse(l) as { requestId: string }).requestId)).toEqual([...ids].reverse());
    const csv = await (
      await gateway(`/admin/api/requests/export?clientKeyId=${pool.clientKeyId}&format=csv&max=3`, { headers: { authorization: `Bearer ${token}` } })
    ).text();
    const rows = csv.trim().split("\r\n");
    expect(rows[0]).toMatch(/^request_id,started_at,client_key,/);
    expect(rows).toHaveLength(4);
    // A user agent that a spreadsheet would run as a formula is written as text.
    const all = await (
      await gateway(`/admin/api/requests/export?clientKeyId=${pool.clientKeyId}&format=csv`, { headers: { authorization: `Bearer ${token}` } })
    ).text();
    expect(all).toContain(`"'=cmd|"" /C calc""!A0"`);
  });
});

describe("the request log's sample", () => {
  it("keeps every request with a failed or retried attempt and none of the plain successes at requestLogSample 0, while counting them all", async () => {
    const [limited, serving] = [uniqueKey("sample-limited"), uniqueKey("sample-serving")];
    const pool = await createPool(FAKE_BASE_URL, [limited, serving], { client: { storeBodies: true } });
    fakes.set(
      installFakeUpstream({
        [limited]: () =>
          new Response(JSON.stringify({ error: { message: "slow down", type: "rate_limit_error" } }), { status: 429, headers: { "retry-after": "30" } }),
      }).restore,
    );
    expect((await admin("PATCH", "/settings", { requestLogSample: 0 })).status).toBe(200);
    try {
      await waitForSnapshot((s) => s.settings.requestLogSample === 0);
      forgetSnapshot();
      const sent: { id: string; attempts: string }[] = [];
      // Until the limited key has been tried once a request may land on either: one fails over, the rest are plain.
      for (let i = 0; i < 20 && (sent.length < 4 || !sent.some((r) => r.attempts === "2")); i++) {
        const res = await chat(pool.clientKey, pool.model);
        expect(res.status).toBe(200);
        sent.push({ id: res.headers.get("x-keypool-request-id")!, attempts: res.headers.get("x-keypool-attempts")! });
      }
      const retried = sent.filter((r) => r.attempts === "2");
      const plain = sent.filter((r) => r.attempts === "1");
      expect(retried.length).toBe(1);
      expect(plain.length).toBeGreaterThan(0);
      // Every request is counted, logged or not.
      await waitForRollup(pool.clientKeyId, (r) => r.requests === sent.length && r.attempts === sent.length + 1);
      const page = await pageWhen(`clientKeyId=${pool.clientKeyId}`, 1);
      expect(page.data.map((r) => [r.requestId, r.attempts])).toEqual([[retried[0]!.id, 2]]);
      const kept = await waitFor(async () => {
        const d = await admin<RequestDetail>("GET", `/requests/${retried[0]!.id}`);
        return d.status === 200 && d.body.bodies ? d.body : undefined;
      }, "the retried request's bodies");
      expect(kept.attemptList.map((a) => a.outcome)).toEqual(["rate_limited", "ok"]);
      // A request the log left out is still traced: read from the event archive, whole.
      const traced = await admin<RequestDetail>("GET", `/requests/${plain[0]!.id}`);
      expect(traced.status).toBe(200);
      expect(traced.body).toMatchObject({
        requestId: plain[0]!.id,
        source: "archive",
        clientKeyId: pool.clientKeyId,
        clientName: "test client",
        keyMasked: masked(serving),
        status: 200,
        outcome: "ok",
        attempts: 1,
        userAgent: "request-log-test/1.0",
        tokens: { prompt: FAKE_USAGE.prompt_tokens, completion: FAKE_USAGE.completion_tokens, total: FAKE_USAGE.total_tokens, source: "upstream" },
        bodies: null,
      });
      expect(traced.body.attemptList.map((a) => [a.attempt, a.keyMasked, a.outcome])).toEqual([[1, masked(serving), "ok"]]);
      const missing = await admin<{ error: { message: string; code: string } }>("GET", `/requests/${newEventId(Date.now() - 5_000)}`);
      expect(missing.status).toBe(404);
      expect(missing.body.error).toMatchObject({ code: "request_not_found" });
      expect(missing.body.error.message).toContain("0% of the rest (the requestLogSample setting)");
      // Nor were its bodies kept: nothing of a request the log left out is stored.
      const stored = await env.ARCHIVE.list({ prefix: "bodies/" });
      expect(stored.objects.some((o) => o.key.includes(plain[0]!.id))).toBe(false);
      expect(stored.objects.some((o) => o.key.includes(retried[0]!.id))).toBe(true);
    } finally {
      await admin("PATCH", "/settings", { requestLogSample: 1 });
      await waitForSnapshot((s) => s.settings.requestLogSample === 1);
    }
  });
});

describe("kept bodies", () => {
  it("are kept only for a client key that asks, redacted of every key, a streamed answer reassembled", async () => {
    const upstreamKey = uniqueKey("bodies");
    const pool = await createPool(FAKE_BASE_URL, [upstreamKey], { client: { storeBodies: true } });
    const other = await admin<{ id: string; key: string }>("POST", "/client-keys", { name: "keeps nothing" });
    await waitForSnapshot((s) => s.clientKeys.some((c) => c.id === other.body.id));
    forgetSnapshot();
    fakes.set(
      installFakeUpstream({ [upstreamKey]: async (req) => (((await req.json()) as { stream?: boolean }).stream ? streamAnswer() : jsonAnswer()) }).restore,
    );
    // The client pastes its own key and the upstream's into the prompt: neither may be kept.
    const prompt = `my key is ${pool.clientKey} and theirs ${upstreamKey}`;
    const send = (clientKey: string, stream: boolean) =>
      gateway("/v1/chat/completions", {
        method: "POST",
        headers: { authorization: `Bearer ${clientKey}`, "content-type": "application/json" },
        body: JSON.stringify({ model: pool.model, stream, messages: [{ role: "user", content: prompt }] }),
      }).then(async (res) => {
        await res.arrayBuffer();
        return res.headers.get("x-keypool-request-id")!;
      });
    const json = await send(pool.clientKey, false);
    const streamed = await send(pool.clientKey, true);
    const none = await send(other.body.key, false);
    const detail = (id: string) =>
      waitFor(async () => {
        const d = await admin<RequestDetail>("GET", `/requests/${id}`);
        return d.status === 200 && (id === none || d.body.bodies) ? d.body : undefined;
      }, "the request and its bodies");
    const kept = await detail(json);
    expect(kept.bodies!.request.text).toContain("my key is [redacted] and theirs [redacted]");
    expect(kept.bodies!.response?.text).toContain('"content":"Hello"');
    const reassembled = await detail(streamed);
    expect(JSON.parse(reassembled.bodies!.response!.text!)).toMatchObject({ role: "assistant", content: "Hello 😀", finish_reason: "stop" });
    for (const d of [kept, reassembled]) {
      const text = JSON.stringify(d);
      expect(text).not.toContain(pool.clientKey);
      expect(text).not.toContain(upstreamKey);
    }
    expect((await detail(none)).bodies).toBeNull();
  });
});

describe("client addresses", () => {
  it("are recorded only while the logClientIp setting is on", async () => {
    const pool = await createPool(FAKE_BASE_URL, [uniqueKey("address")]);
    fakes.set(installFakeUpstream({}).restore);
    const send = () =>
      gateway("/v1/chat/completions", {
        method: "POST",
        headers: { authorization: `Bearer ${pool.clientKey}`, "content-type": "application/json", "cf-connecting-ip": "203.0.113.9" },
        body: chatBody(pool.model),
      }).then(async (res) => {
        await res.arrayBuffer();
        return res.headers.get("x-keypool-request-id")!;
      });
    const before = await send();
    expect((await admin("PATCH", "/settings", { logClientIp: true })).status).toBe(200);
    try {
      await waitForSnapshot((s) => s.settings.logClientIp);
      forgetSnapshot();
      const after = await send();
      const [a, b] = [(await pageWhen(`requestId=${before}`, 1)).data[0]!, (await pageWhen(`requestId=${after}`, 1)).data[0]!];
      expect([a.clientIp, b.clientIp]).toEqual([null, "203.0.113.9"]);
    } finally {
      await admin("PATCH", "/settings", { logClientIp: false });
      await waitForSnapshot((s) => !s.settings.logClientIp);
    }
  });
});

describe("kept bodies' retention", () => {
  it("deletes the days past retention.bodyDays and keeps the rest", async () => {
    // Years back, so the bodies other tests keep today are newer than the cutoff and stay.
    const now = Date.UTC(2020, 11, 10, 12);
    const day = (d: number) => new Date(Date.UTC(2020, 11, d)).toISOString().slice(0, 10);
    for (const d of [1, 2, 7, 8, 10]) await env.ARCHIVE.put(`bodies/${day(d)}/r-${d}.json`, "{}");
    // Three days kept: the 7th (three days before the 10th) and later stay.
    expect(await pruneBodies(env.ARCHIVE, 3, now)).toBe(2);
    const left = (await env.ARCHIVE.list({ prefix: "bodies/" })).objects.map((o) => o.key).filter((k) => /r-\d+\.json$/.test(k));
    expect(left.sort()).toEqual([`bodies/${day(10)}/r-10.json`, `bodies/${day(7)}/r-7.json`, `bodies/${day(8)}/r-8.json`].sort());
  });
});

function jsonAnswer(): Response {
  const body = JSON.stringify({
    id: "c1",
    object: "chat.completion",
    choices: [{ index: 0, message: { role: "assistant", content: "Hello" }, finish_reason: "stop" }],
    usage: FAKE_USAGE,
  });
  return new Response(body, { headers: { "content-type": "application/json", "content-length": String(new TextEncoder().encode(body).byteLength) } });
}

function streamAnswer(): Response {
  const bytes = new TextEncoder().encode(FAKE_SSE);
  return new Response(
    new ReadableStream({
      start(controller) {
        controller.enqueue(bytes);
        controller.close();
      },
    }),
    { headers: { "content-type": "text/event-stream" } },
  );
}

async function keyId(upstreamId: string, key: string): Promise<string> {
  const listed = await admin<{ data: { id: string; masked: string }[] }>("GET", `/keys?upstreamId=${upstreamId}`);
  return listed.body.data.find((k) => k.masked === masked(key))!.id;
}
