import { afterEach, describe, expect, it } from "vitest";
import { FAKE_BASE_URL, installFakeUpstream } from "./fake-upstream";
import { admin, chatBody, createPool, forgetSnapshot, gateway, resetAfterEach, waitForSnapshot } from "./helpers";

const fakes = resetAfterEach(afterEach);
const uniqueKey = (label: string) => `sk-${label}-${crypto.randomUUID().replaceAll("-", "")}`;

function preflight(path: string, origin: string, requestHeaders = "authorization, content-type, x-stainless-os") {
  return gateway(path, {
    method: "OPTIONS",
    headers: { origin, "access-control-request-method": "POST", "access-control-request-headers": requestHeaders },
  });
}

function chatFrom(origin: string | null, clientKey: string, model: string) {
  return gateway("/v1/chat/completions", {
    method: "POST",
    headers: { authorization: `Bearer ${clientKey}`, "content-type": "application/json", ...(origin ? { origin } : {}) },
    body: chatBody(model),
  });
}

async function setOrigins(corsOrigins: string[]) {
  const res = await admin("PATCH", "/settings", { corsOrigins });
  expect(res.status).toBe(200);
  await waitForSnapshot((s) => JSON.stringify(s.settings.corsOrigins) === JSON.stringify(corsOrigins));
  forgetSnapshot(); // the isolate would look for the new snapshot only 2 s after its last look
}

describe("CORS on the OpenAI endpoints", () => {
  it("answers any origin by default, on answers and errors, and never on the admin API", async () => {
    const pool = await createPool(FAKE_BASE_URL, [uniqueKey("cors")]);
    fakes.set(installFakeUpstream({}).restore);

    const pre = await preflight("/v1/chat/completions", "https://app.example");
    expect(pre.status).toBe(204);
    expect(pre.headers.get("access-control-allow-origin")).toBe("*");
    expect(pre.headers.get("access-control-allow-methods")).toContain("POST");
    expect(pre.headers.get("access-control-allow-headers")).toBe("authorization, content-type, x-stainless-os");
    expect(pre.headers.get("access-control-allow-credentials")).toBeNull();
    // The un-prefixed aliases are the same endpoints.
    expect((await preflight("/models", "https://app.example")).headers.get("access-control-allow-origin")).toBe("*");
    // A header list that is not a list of header names is not echoed.
    expect((await preflight("/v1/embeddings", "https://app.example", "x-a, (y), z")).headers.get("access-control-allow-headers")).toContain("authorization");

    const ok = await chatFrom("https://app.example", pool.clientKey, pool.model);
    expect(ok.status).toBe(200);
    expect(ok.headers.get("access-control-allow-origin")).toBe("*");
    expect(ok.headers.get("access-control-expose-headers")).toContain("x-keypool-request-id");
    const refused = await chatFrom("https://app.example", "kp-wrong", pool.model);
    expect(refused.status).toBe(401);
    expect(refused.headers.get("access-control-allow-origin")).toBe("*"); // the browser may read why
    // Server-side clients send no Origin and get no CORS headers.
    expect((await chatFrom(null, pool.clientKey, pool.model)).headers.get("access-control-allow-origin")).toBeNull();

    const adminPre = await gateway("/admin/api/settings", {
      method: "OPTIONS",
      headers: { origin: "https://app.example", "access-control-request-method": "PATCH" },
    });
    expect(adminPre.headers.get("access-control-allow-origin")).toBeNull();
    expect(adminPre.status).toBe(403); // the admin API refuses cross-origin calls outright
    const adminGet = await gateway("/admin/api/settings", { headers: { origin: "https://app.example" } });
    expect(adminGet.headers.get("access-control-allow-origin")).toBeNull();
  });

  it("follows a list of origins, refuses other origins' preflights, and validates the setting", async () => {
    const pool = await createPool(FAKE_BASE_URL, [uniqueKey("cors-list")]);
    fakes.set(installFakeUpstream({}).restore);
    const bad = await admin<{ error: { param: string; type: string } }>("PATCH", "/settings", { corsOrigins: ["https://app.example/path"] });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatchObject({ type: "invalid_request_error", param: expect.stringContaining("corsOrigins") });

    await setOrigins(["https://app.example", "http://localhost:5173"]);
    try {
      const allowed = await preflight("/v1/chat/completions", "http://localhost:5173");
      expect(allowed.status).toBe(204);
      expect(allowed.headers.get("access-control-allow-origin")).toBe("http://localhost:5173");
      expect(allowed.headers.get("vary")).toContain("Origin");

      const other = await preflight("/v1/chat/completions", "https://evil.example");
      expect(other.status).toBe(403);
      expect(other.headers.get("access-control-allow-origin")).toBeNull();
      expect(((await other.json()) as { error: { code: string } }).error.code).toBe("cors_origin_not_allowed");

      const listed = await chatFrom("https://app.example", pool.clientKey, pool.model);
      expect(listed.headers.get("access-control-allow-origin")).toBe("https://app.example");
      expect(listed.headers.get("vary")).toContain("Origin");
      // A non-browser client can claim any Origin; it is served, but a browser would not let the page read it.
      const unlisted = await chatFrom("https://evil.example", pool.clientKey, pool.model);
      expect(unlisted.status).toBe(200);
      expect(unlisted.headers.get("access-control-allow-origin")).toBeNull();

      await setOrigins([]);
      expect((await preflight("/v1/chat/completions", "https://app.example")).status).toBe(403);
    } finally {
      await setOrigins(["*"]);
    }
  });
});
