import { describe, expect, it } from "vitest";
import { constantTimeEqual, decryptSecret, encryptSecret, importEncryptionKey, maskSecret, sha256Hex } from "../../schema/crypto";

const KEK = Buffer.from(Array.from({ length: 32 }, (_, i) => i)).toString("base64url");

describe("secrets at rest", () => {
  it("round-trips a key through AES-GCM with a fresh IV each time", async () => {
    const key = await importEncryptionKey(KEK);
    const a = await encryptSecret(key, "sk-secret-value-123456");
    const b = await encryptSecret(key, "sk-secret-value-123456");
    expect(a).not.toBe(b);
    expect(a).not.toContain("secret-value");
    expect(await decryptSecret(key, a)).toBe("sk-secret-value-123456");
  });

  it("refuses a tampered ciphertext and a different key", async () => {
    const key = await importEncryptionKey(KEK);
    const sealed = await encryptSecret(key, "sk-secret-value-123456");
    const tampered = sealed.slice(0, -2) + (sealed.endsWith("A") ? "BB" : "AA");
    await expect(decryptSecret(key, tampered)).rejects.toThrow();
    const other = await importEncryptionKey(Buffer.alloc(32, 7).toString("base64"));
    await expect(decryptSecret(other, sealed)).rejects.toThrow();
  });

  it("rejects an encryption key of the wrong length", async () => {
    await expect(importEncryptionKey("c2hvcnQ")).rejects.toThrow(/32 bytes/);
  });

  it("masks, hashes and compares", async () => {
    expect(maskSecret("sk-abcdefghijklmnopwxyz")).toBe("sk-ab…wxyz");
    expect(await sha256Hex("abc")).toBe("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    expect(await constantTimeEqual("same", "same")).toBe(true);
    expect(await constantTimeEqual("same", "Same")).toBe(false);
    expect(await constantTimeEqual("", "x")).toBe(false);
  });
});

describe("the keyring during a rotation", () => {
  it("opens what either key sealed, seals under the next one, and opens only its own key's once the rotation is over", async () => {
    const { SecretCache } = await import("../../gateway/logic/secrets");
    const NEXT = Buffer.from(Array.from({ length: 32 }, (_, i) => 64 + i)).toString("base64url");
    const underOld = await encryptSecret(await importEncryptionKey(KEK), "sk-sealed-before");
    const underNext = await encryptSecret(await importEncryptionKey(NEXT), "sk-sealed-during");

    const rotating = new SecretCache(KEK, "KEY_ENCRYPTION_KEY", NEXT);
    expect(await rotating.decrypt(underOld)).toBe("sk-sealed-before");
    expect(await rotating.decrypt(underNext)).toBe("sk-sealed-during");
    expect(await decryptSecret(await importEncryptionKey(NEXT), await encryptSecret(await rotating.sealingKey(), "x"))).toBe("x");

    await expect(new SecretCache(KEK).decrypt(underNext)).rejects.toThrow();
    const finished = new SecretCache(NEXT, "KEY_ENCRYPTION_KEY", NEXT);
    expect(finished.nextCryptoKey()).toBeNull();
    expect(await finished.decrypt(underNext)).toBe("sk-sealed-during");
    await expect(finished.decrypt(underOld)).rejects.toThrow();
  });
});
