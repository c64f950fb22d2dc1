import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import type { BackupArchive } from "../../schema";
import { decryptSecret, importEncryptionKey, sha256Hex } from "../../schema/crypto";
import { FAKE_BASE_URL } from "./fake-upstream";
import { admin, adminToken, gatewayWith } from "./helpers";

/**
 * Backup and restore through the admin API: the archive is sealed under its
 * passphrase (nothing readable in it), refuses a non-empty deployment, a wrong
 * passphrase, a changed archive and a newer schema, and restores into a
 * deployment with other secrets with the same keys, client keys and settings.
 */

const PASSPHRASE = "correct horse battery staple";
// Another deployment's key-encryption key and alert key (32 bytes 96..127 and 128..159).
const OTHER_KEK = "YGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn8";
const OTHER_ALERT_KEY = "gIGCg4SFhoeIiYqLjI2Oj5CRkpOUlZaXmJmam5ydnp8";

async function post(call: ReturnType<typeof gatewayWith>, path: string, body: unknown) {
  const res = await call(`/admin/api${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${await adminToken()}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

/** Empties the configuration tables, as a fresh deployment has them. */
async function emptyConfiguration() {
  await env.DB.batch(["prices", "keys", "upstreams", "client_keys", "alert_destinations", "metrics_access"].map((t) => env.DB.prepare(`DELETE FROM ${t}`)));
}

describe("backup and restore", () => {
  it("round-trips the configuration into a deployment with other secrets", { timeout: 60_000 }, async () => {
    const plainKeys = ["sk-backup-one-000000000001", "sk-backup-two-000000000002"];
    const upstream = await admin<{ id: string }>("POST", "/upstreams", {
      name: "backed up",
      baseUrl: FAKE_BASE_URL,
      models: ["bk-model"],
      limits: { rpm: 60 },
    });
    await admin("POST", "/keys", { upstreamId: upstream.body.id, text: plainKeys.join("\n") });
    const client = await admin<{ id: string; key: string }>("POST", "/client-keys", { name: "backed-up client", rpmLimit: 7 });
    await admin("PATCH", "/settings", { maxAttempts: 4 });
    const webhook = "https://hooks.example.com/keypool/0123456789abcdef";
    await admin("POST", "/alerts/destinations", { name: "ops", kind: "webhook", url: webhook });

    const call = gatewayWith({});
    const short = await post(call, "/backup", { passphrase: "short" });
    expect(short.status).toBe(400);
    const made = await post(call, "/backup", { passphrase: PASSPHRASE });
    expect(made.status).toBe(200);
    const archive = made.body as BackupArchive;
    expect(archive).toMatchObject({ format: "keypool-backup", version: 1, cipher: "AES-GCM", kdf: { name: "PBKDF2", iterations: 100_000 } });
    // Sealed: no key, URL, hash or name can be read from it.
    const text = JSON.stringify(archive);
    for (const secret of [...plainKeys, webhook, await sha256Hex(client.body.key), "backed-up client"]) expect(text).not.toContain(secret);

    // Destinations it cannot open stop a backup, with the reason; none is left out silently.
    const withoutAlertKey = await post(gatewayWith({ ALERT_ENCRYPTION_KEY: "" }), "/backup", { passphrase: PASSPHRASE });
    expect(withoutAlertKey.status).toBe(503);
    expect(withoutAlertKey.body.error.code).toBe("alerts_not_configured");
    const otherAlertKey = await post(gatewayWith({ ALERT_ENCRYPTION_KEY: OTHER_ALERT_KEY }), "/backup", { passphrase: PASSPHRASE });
    expect(otherAlertKey.status).toBe(409);
    expect(otherAlertKey.body.error.code).toBe("destinations_unreadable");
    const otherKek = await post(gatewayWith({ KEY_ENCRYPTION_KEY: OTHER_KEK }), "/backup", { passphrase: PASSPHRASE });
    expect(otherKek.status).toBe(409);
    expect(otherKek.body.error.code).toBe("keys_unreadable");

    // Not into a deployment that has a pool.
    const busy = await post(call, "/restore", { passphrase: PASSPHRASE, archive });
    expect(busy.status).toBe(409);
    expect(busy.body.error.code).toBe("not_empty");

    await emptyConfiguration();
    const other = gatewayWith({ KEY_ENCRYPTION_KEY: OTHER_KEK, ALERT_ENCRYPTION_KEY: OTHER_ALERT_KEY });
    const wrong = await post(other, "/restore", { passphrase: "not the passphrase at all", archive });
    expect(wrong.status).toBe(400);
    expect(wrong.body.error).toMatchObject({ code: "wrong_passphrase", type: "invalid_request_error", param: "passphrase" });
    const tampered = { ...archive, data: archive.data.slice(0, -4) + (archive.data.endsWith("AAAA") ? "BBBB" : "AAAA") };
    expect((await post(other, "/restore", { passphrase: PASSPHRASE, archive: tampered })).body.error.code).toBe("wrong_passphrase");
    const newer = await post(other, "/restore", { passphrase: PASSPHRASE, archive: { ...archive, schema: "9999_from_the_future.sql" } });
    expect(newer.body.error.code).toBe("archive_too_new");

    const restored = await post(other, "/restore", { passphrase: PASSPHRASE, archive });
    expect(restored.status).toBe(200);
    expect(restored.body.restored).toMatchObject({ upstreams: 1, keys: 2, client_keys: 1, alert_destinations: 1, settings: 1 });

    // The keys, sealed under the other deployment's key, open to the same plaintexts.
    const otherKey = await importEncryptionKey(OTHER_KEK);
    const { results: keys } = await env.DB.prepare("SELECT secret_enc, upstream_id FROM keys").all<{ secret_enc: string; upstream_id: string }>();
    expect(keys.every((k) => k.upstream_id === upstream.body.id)).toBe(true);
    expect((await Promise.all(keys.map((k) => decryptSecret(otherKey, k.secret_enc)))).sort()).toEqual(plainKeys);
    // The client key keeps its hash (the same key works) and its limit; the upstream its limits; the settings their change.
    const clientRow = await env.DB.prepare("SELECT id, hash, rpm_limit FROM client_keys").first<{ id: string; hash: string; rpm_limit: number }>();
    expect(clientRow).toEqual({ id: client.body.id, hash: await sha256Hex(client.body.key), rpm_limit: 7 });
    expect(JSON.parse((await env.DB.prepare("SELECT limits FROM upstreams").first<{ limits: string }>())!.limits)).toMatchObject({ rpm: 60 });
    expect((await (await other("/admin/api/settings", { headers: { authorization: `Bearer ${await adminToken()}` } })).json()) as object).toMatchObject({
      maxAttempts: 4,
    });
    // The destination's URL, sealed under the other deployment's alert key.
    const dest = await env.DB.prepare("SELECT url_enc FROM alert_destinations").first<{ url_enc: string }>();
    expect(await decryptSecret(await importEncryptionKey(OTHER_ALERT_KEY), dest!.url_enc)).toBe(webhook);
  });
});
