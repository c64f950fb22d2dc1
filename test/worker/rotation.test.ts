import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { decryptSecret, importEncryptionKey } from "../../schema/crypto";
import { FAKE_BASE_URL } from "./fake-upstream";
import { admin, adminToken, gatewayWith } from "./helpers";
import { TEST_SECRETS } from "./secrets";

/**
 * Rotating KEY_ENCRYPTION_KEY and JWT_SECRET without downtime: with `<NAME>_NEXT`
 * set, what either key sealed or signed is accepted, new secrets are sealed and
 * signed with the next one, and /keys/reseal moves every key over.
 */

// 32 bytes 64 to 95, base64url: the key-encryption key the rotation moves to.
const NEXT_KEK = "QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8";
const NEXT_JWT = "rotated-jwt-secret-rotated-jwt-secret-0123";

const json = (body: unknown, token?: string): RequestInit => ({
  method: "POST",
  headers: { "content-type": "application/json", ...(token ? { authorization: `Bearer ${token}` } : {}) },
  body: JSON.stringify(body),
});

describe("rotating the key-encryption key", () => {
  it("re-seals every key under the next key, page by page, and the keys stay the same", async () => {
    const upstream = await admin<{ id: string }>("POST", "/upstreams", { name: "rotation", baseUrl: FAKE_BASE_URL, models: ["rot-model"] });
    const plain = ["sk-rotate-one-0000000001", "sk-rotate-two-0000000002", "sk-rotate-three-00000003"];
    await admin("POST", "/keys", { upstreamId: upstream.body.id, text: plain.join("\n") });
    const token = await adminToken();

    // Not rotating: nothing to re-seal under.
    const refused = await gatewayWith({})("/admin/api/keys/reseal", json({}, token));
    expect(refused.status).toBe(409);
    expect(((await refused.json()) as { error: { code: string } }).error.code).toBe("rotation_not_started");

    const rotating = gatewayWith({ KEY_ENCRYPTION_KEY_NEXT: NEXT_KEK });
    const health = (await (await rotating("/healthz?deep=1")).json()) as { rotation: { keyEncryptionKey: boolean } };
    expect(health.rotation.keyEncryptionKey).toBe(true);

    // A key added during the rotation is sealed under the next key already.
    await rotating("/admin/api/keys", json({ upstreamId: upstream.body.id, text: "sk-rotate-added-during-0004" }, token));
    const pages: { resealed: number; alreadySealed: number; unreadable: string[]; next: string | null }[] = [];
    let after = "";
    do {
      const res = await rotating("/admin/api/keys/reseal", json({ after, limit: 2 }, token));
      expect(res.status).toBe(200);
      const page = (await res.json()) as (typeof pages)[number];
      pages.push(page);
      after = page.next ?? "";
    } while (after !== "");
    expect(pages.length).toBeGreaterThan(1);
    expect(pages.reduce((n, p) => n + p.resealed, 0)).toBeGreaterThanOrEqual(plain.length);
    expect(pages.reduce((n, p) => n + p.alreadySealed, 0)).toBeGreaterThanOrEqual(1);
    expect(pages.flatMap((p) => p.unreadable)).toEqual([]);

    // Every key of the upstream now opens under the next key only, to the same plaintext.
    const oldKey = await importEncryptionKey(TEST_SECRETS.KEY_ENCRYPTION_KEY);
    const newKey = await importEncryptionKey(NEXT_KEK);
    const { results } = await env.DB.prepare("SELECT secret_enc FROM keys WHERE upstream_id = ?1").bind(upstream.body.id).all<{ secret_enc: string }>();
    const opened = await Promise.all(results.map((r) => decryptSecret(newKey, r.secret_enc)));
    expect(opened.sort()).toEqual([...plain, "sk-rotate-added-during-0004"].sort());
    for (const r of results) await expect(decryptSecret(oldKey, r.secret_enc)).rejects.toThrow();

    // A second pass finds nothing left to do.
    const again = (await (await rotating("/admin/api/keys/reseal", json({ limit: 1000 }, token))).json()) as (typeof pages)[number];
    expect(again.resealed).toBe(0);
    expect(again.next).toBeNull();

    // Finished (KEY_ENCRYPTION_KEY = the new key, NEXT equal or gone): no rotation reported.
    const finished = (await (await gatewayWith({ KEY_ENCRYPTION_KEY: NEXT_KEK, KEY_ENCRYPTION_KEY_NEXT: NEXT_KEK })("/healthz?deep=1")).json()) as {
      rotation: { keyEncryptionKey: boolean };
    };
    expect(finished.rotation.keyEncryptionKey).toBe(false);
  });
});

describe("rotating the JWT secret", () => {
  it("keeps sessions signed before the rotation, signs new ones with the next secret, and those survive the finish", async () => {
    const before = await adminToken();
    const rotating = gatewayWith({ JWT_SECRET_NEXT: NEXT_JWT });
    const finished = gatewayWith({ JWT_SECRET: NEXT_JWT });
    const original = gatewayWith({});
    const session = (call: ReturnType<typeof gatewayWith>, token: string) => call("/admin/api/settings", { headers: { authorization: `Bearer ${token}` } });

    expect((await session(rotating, before)).status).toBe(200);
    const login = await rotating("/admin/api/login", json({ password: TEST_SECRETS.ADMIN_PASSWORD }));
    expect(login.status).toBe(200);
    const { token: during } = (await login.json()) as { token: string };
    // Signed with the next secret: good while rotating and after, not under the old secret alone.
    expect((await session(rotating, during)).status).toBe(200);
    expect((await session(finished, during)).status).toBe(200);
    expect((await session(original, during)).status).toBe(401);
    // A session from before the rotation ends with its finish.
    expect((await session(finished, before)).status).toBe(401);
    const health = (await (await rotating("/healthz?deep=1")).json()) as { rotation: { jwtSecret: boolean } };
    expect(health.rotation.jwtSecret).toBe(true);
  });
});
