import { env } from "cloudflare:workers";
import { afterEach, describe, expect, it } from "vitest";
import { FAKE_BASE_URL, installFakeUpstream } from "./fake-upstream";
import { adminToken, chatBody, createPool, gateway, resetAfterEach } from "./helpers";

const fakes = resetAfterEach(afterEach);

interface HostileCase {
  what: string;
  path: string;
  init: RequestInit;
}

/** Counts of the rows an admin mistake could leave behind half-written. */
async function storedCounts(): Promise<string> {
  const row = await env.DB.prepare(
    "SELECT (SELECT COUNT(*) FROM upstreams) AS upstreams, (SELECT COUNT(*) FROM keys) AS keys, (SELECT COUNT(*) FROM client_keys) AS clients, (SELECT value FROM settings WHERE id = 1) AS settings",
  ).first();
  return JSON.stringify(row);
}

/** At least 200 requests a client or an attacker might send, each of which must be refused locally. */
function corpus(clientKey: string, model: string, adminAuth: string): HostileCase[] {
  const auth = { authorization: `Bearer ${clientKey}` };
  const json = { ...auth, "content-type": "application/json" };
  const cases: HostileCase[] = [];
  const post = (what: string, path: string, headers: Record<string, string>, body: BodyInit | null) =>
    cases.push({ what, path, init: { method: "POST", headers, body } });

  const notJson = [
    "",
    "{",
    "}",
    "[",
    '{"model":',
    "{'model':'x'}",
    '{model: "x"}',
    '{"model":"x",}',
    "NaN",
    "undefined",
    '{"a":1}{',
    "\u0000",
    "<xml/>",
    "model=x",
    '{"model":"x"',
    "[1,2",
    '"unterminated',
    '{"model":"x" "messages":[]}',
    '{"model":01}',
    '{"model":"\\x41"}',
  ];
  const notObjects = ["null", "123", '"text"', "true", "[]", '[{"model":"x"}]'];
  const badModels: unknown[] = [undefined, null, "", "   ", 5, 0, true, [], ["x"], {}, { id: "x" }, "m".repeat(201)];
  const badStream: unknown[] = ["yes", "true", 1, 0, [], {}, "false"];
  const endpoints = ["/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses", "/v1/moderations", "/v1/images/generations"];
  for (const path of endpoints) {
    for (const body of notJson) post(`invalid JSON ${JSON.stringify(body).slice(0, 30)} to ${path}`, path, json, body);
    for (const body of notObjects) post(`JSON that is no object (${body}) to ${path}`, path, json, body);
    for (const model of badModels) post(`model ${JSON.stringify(model)?.slice(0, 20)} to ${path}`, path, json, JSON.stringify({ model, messages: [] }));
  }
  post("a model no upstream offers", "/v1/chat/completions", json, JSON.stringify({ model: "no-such-model-anywhere", messages: [] }));
  for (const stream of badStream) post(`stream ${JSON.stringify(stream)}`, "/v1/chat/completions", json, JSON.stringify({ model, messages: [], stream }));
  for (const type of ["text/plain", "application/x-www-form-urlencoded", "application/xml", "", "multipart/form-data; boundary=x", "application/jsonp"]) {
    post(`content type '${type}' on a JSON endpoint`, "/v1/chat/completions", { ...auth, "content-type": type }, chatBody(model));
  }
  // Invalid UTF-8 inside a JSON string.
  post(
    "invalid UTF-8",
    "/v1/chat/completions",
    json,
    new Uint8Array([...new TextEncoder().encode('{"model":"'), 0xff, 0xfe, ...new TextEncoder().encode('"}')]),
  );
  post(
    "a lone surrogate's bytes",
    "/v1/chat/completions",
    json,
    new Uint8Array([...new TextEncoder().encode('{"model":"'), 0xed, 0xa0, 0x80, ...new TextEncoder().encode('"}')]),
  );
  // Nesting far deeper than any real request.
  post("deeply nested JSON", "/v1/chat/completions", json, `{"model":"${model}","messages":${"[".repeat(200_000)}${"]".repeat(200_000)}}`);
  // So deep that parsing it would build millions of arrays: refused before parsing.
  post(
    "deeply nested JSON of 16 MiB",
    "/v1/chat/completions",
    json,
    `{"model":"${model}","messages":${"[".repeat(8 * 1024 * 1024)}${"]".repeat(8 * 1024 * 1024)}}`,
  );
  // Bodies over the limit, declared or not.
  post("a declared body over 32 MiB", "/v1/chat/completions", { ...json, "content-length": String(33 * 1024 * 1024) }, chatBody(model));
  post("an actual body over 32 MiB", "/v1/chat/completions", json, `{"model":"${model}","pad":"${"x".repeat(32 * 1024 * 1024)}"}`);
  // Multipart endpoints without a proper form.
  for (const path of ["/v1/audio/transcriptions", "/v1/audio/translations", "/v1/images/edits"]) {
    post(`multipart without a boundary to ${path}`, path, { ...auth, "content-type": "multipart/form-data" }, "--x\r\n");
    post(`JSON to multipart ${path}`, path, json, chatBody(model));
    post(
      `a broken form to ${path}`,
      path,
      { ...auth, "content-type": "multipart/form-data; boundary=zz" },
      '--zz\r\nContent-Disposition: form-data; name="model"\r\n\r\nx',
    );
    post(
      `a form without a model to ${path}`,
      path,
      { ...auth, "content-type": "multipart/form-data; boundary=zz" },
      '--zz\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n\r\nabc\r\n--zz--\r\n',
    );
  }
  // Client keys that are missing, malformed or unknown.
  const badAuth = [
    "",
    "Bearer",
    "Bearer ",
    "Basic dXNlcjpwYXNz",
    `Bearer ${clientKey}x`,
    `Bearer ${clientKey.slice(0, -1)}`,
    "Bearer kp-",
    `Bearer ${"k".repeat(5000)}`,
    "bearer",
    `Token ${clientKey}`,
    `Bearer ${clientKey} extra`,
    "Bearer sk-an-upstream-key",
  ];
  for (const authorization of badAuth)
    post(`authorization '${authorization.slice(0, 24)}'`, "/v1/chat/completions", { "content-type": "application/json", authorization }, chatBody(model));
  post("no authorization at all", "/v1/chat/completions", { "content-type": "application/json" }, chatBody(model));
  post("x-api-key with an unknown key", "/v1/chat/completions", { "content-type": "application/json", "x-api-key": "kp-unknown" }, chatBody(model));
  // Paths that try to reach elsewhere, and wrong methods.
  for (const path of [
    "/v1/../admin/api/keys",
    "/v1/%2e%2e/admin/api/keys",
    "/v1/chat%2Fcompletions",
    "/v1//chat/completions",
    "/v1/chat/completions/../../admin/api/keys",
    "/v1/admin/api/keys",
    "/v1/unknown",
    "/v1/chat/completions%00",
    "/v1/Chat/Completions",
    "/v2/chat/completions",
  ]) {
    post(`path ${path}`, path, json, chatBody(model));
  }
  for (const method of ["GET", "PUT", "DELETE", "PATCH"]) {
    for (const path of ["/v1/chat/completions", "/v1/embeddings", "/v1/models/x"])
      cases.push({ what: `${method} ${path}`, path, init: { method, headers: auth } });
  }
  // Admin bodies of the wrong shape (each must change nothing).
  const adminJson = { authorization: `Bearer ${adminAuth}`, "content-type": "application/json", origin: "https://keypool.test" };
  const adminBodies: [string, string, string][] = [
    ["POST", "/admin/api/upstreams", JSON.stringify({ name: 5, baseUrl: "https://x.test/v1" })],
    ["POST", "/admin/api/upstreams", JSON.stringify({ name: "x", baseUrl: "not a url" })],
    ["POST", "/admin/api/upstreams", JSON.stringify({ name: "x", baseUrl: "ftp://x.test" })],
    ["POST", "/admin/api/upstreams", JSON.stringify({ name: "x", baseUrl: "https://x.test/v1", models: "gpt" })],
    ["POST", "/admin/api/upstreams", "{"],
    ["POST", "/admin/api/keys", JSON.stringify({ upstreamId: 7, text: "sk-abc" })],
    ["POST", "/admin/api/keys", JSON.stringify({ upstreamId: "no-such-upstream", text: "sk-abcdefghijklmnop" })],
    ["POST", "/admin/api/keys", JSON.stringify({ text: ["sk-abc"] })],
    ["POST", "/admin/api/client-keys", JSON.stringify({ name: ["x"] })],
    ["POST", "/admin/api/client-keys", JSON.stringify({ name: "x", rpmLimit: -5 })],
    ["POST", "/admin/api/client-keys", JSON.stringify({ name: "x", expiresAt: "tomorrow" })],
    ["PATCH", "/admin/api/settings", JSON.stringify({ maxAttempts: "many" })],
    ["PATCH", "/admin/api/settings", JSON.stringify({ maxAttempts: 0 })],
    ["PATCH", "/admin/api/settings", JSON.stringify({ timeZone: "Mars/Olympus" })],
    ["PATCH", "/admin/api/settings", JSON.stringify({ attemptTimeoutMs: 1e12 })],
    ["PATCH", "/admin/api/settings", "[]"],
  ];
  for (const [method, path, body] of adminBodies)
    cases.push({ what: `admin ${method} ${path} ${body.slice(0, 40)}`, path, init: { method, headers: adminJson, body } });
  // Bytes that are not UTF-8 inside a JSON string (RFC 8259 §8.1): refused, never stored as U+FFFD.
  const notUtf8 = (before: string, after: string) => new Uint8Array([...new TextEncoder().encode(before), 0xff, 0xfe, ...new TextEncoder().encode(after)]);
  cases.push({
    what: "admin client key named with invalid UTF-8",
    path: "/admin/api/client-keys",
    init: { method: "POST", headers: adminJson, body: notUtf8('{"name":"a', 'b"}') },
  });
  cases.push({
    what: "admin upstream named with invalid UTF-8",
    path: "/admin/api/upstreams",
    init: { method: "POST", headers: adminJson, body: notUtf8('{"name":"a', 'b","baseUrl":"https://x.test/v1"}') },
  });
  cases.push({
    what: "admin settings patch with invalid UTF-8",
    path: "/admin/api/settings",
    init: { method: "PATCH", headers: adminJson, body: notUtf8('{"timeZone":"UTC', '"}') },
  });
  cases.push({
    what: "admin call with text/plain",
    path: "/admin/api/upstreams",
    init: { method: "POST", headers: { ...adminJson, "content-type": "text/plain" }, body: JSON.stringify({ name: "x", baseUrl: "https://x.test/v1" }) },
  });
  cases.push({
    what: "admin call from another origin",
    path: "/admin/api/upstreams",
    init: { method: "POST", headers: { ...adminJson, origin: "https://evil.test" }, body: JSON.stringify({ name: "x", baseUrl: "https://x.test/v1" }) },
  });
  return cases;
}

describe("hostile input", () => {
  // Over 300 requests, several of them tens of MiB: a budget that holds on a busy 2-core machine.
  it(
    "refuses 200+ hostile requests with a 4xx in the right shape, forwards none, writes nothing, and still serves a good request",
    { timeout: 120_000 },
    async () => {
      const pool = await createPool(FAKE_BASE_URL, [`sk-hostile-${crypto.randomUUID()}`]);
      const fake = installFakeUpstream({});
      fakes.set(fake.restore);
      const before = await storedCounts();
      const cases = corpus(pool.clientKey, pool.model, await adminToken());
      expect(cases.length).toBeGreaterThanOrEqual(200);
      console.log(`hostile input: ${cases.length} requests`);
      const wrong: string[] = [];
      for (const c of cases) {
        const res = await gateway(c.path, c.init);
        const text = await res.text();
        let shape = false;
        try {
          const body = JSON.parse(text) as { error?: { message?: unknown; type?: unknown; param?: unknown; code?: unknown } };
          shape = typeof body.error?.message === "string" && typeof body.error.type === "string" && "param" in body.error && "code" in body.error;
        } catch {
          shape = false;
        }
        if (res.status < 400 || res.status >= 500 || !shape || /at .+:\d+:\d+/.test(text)) wrong.push(`${c.what}: ${res.status} ${text.slice(0, 120)}`);
      }
      expect(wrong).toEqual([]);
      expect(fake.calls).toEqual([]);
      expect(await storedCounts()).toBe(before);
      const good = await gateway("/v1/chat/completions", {
        method: "POST",
        headers: { authorization: `Bearer ${pool.clientKey}`, "content-type": "application/json" },
        body: chatBody(pool.model),
      });
      expect(good.status).toBe(200);
      expect(fake.calls).toHaveLength(1);
    },
  );
});
