/**
 * Secrets at rest: AES-GCM under a Worker secret (KEY_ENCRYPTION_KEY for upstream
 * keys, ALERT_ENCRYPTION_KEY for alert destinations), SHA-256 hashes for
 * client keys and fingerprints, random tokens. WebCrypto only, no bindings.
 */

const encoder = new TextEncoder();
const decoder = new TextDecoder();

function toBase64Url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64Url(text: string): Uint8Array<ArrayBuffer> {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  const bin = atob(b64 + "=".repeat((4 - (b64.length % 4)) % 4));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** Imports a base64url (or base64) 32-byte encryption key; throws on a wrong length, naming the secret. */
export async function importEncryptionKey(secret: string, name = "KEY_ENCRYPTION_KEY"): Promise<CryptoKey> {
  const raw = fromBase64Url(secret.trim());
  if (raw.length !== 32) throw new Error(`${name} must be 32 bytes, base64-encoded`);
  return crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
}

/** Encrypts a secret as `v1.<iv>.<ciphertext>` (base64url); a fresh IV every call. */
export async function encryptSecret(key: CryptoKey, plaintext: string): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key, encoder.encode(plaintext)));
  return `v1.${toBase64Url(iv)}.${toBase64Url(ct)}`;
}

/** Decrypts what `encryptSecret` produced; throws if it was tampered with or the key differs. */
export async function decryptSecret(key: CryptoKey, sealed: string): Promise<string> {
  const [version, iv, ct] = sealed.split(".");
  if (version !== "v1" || !iv || !ct) throw new Error("unknown secret format");
  const pt = await crypto.subtle.decrypt({ name: "AES-GCM", iv: fromBase64Url(iv) }, key, fromBase64Url(ct));
  return decoder.decode(pt);
}

/** Lowercase hex SHA-256 of a string. */
export async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", encoder.encode(text)));
  let hex = "";
  for (const b of digest) hex += b.toString(16).padStart(2, "0");
  return hex;
}

/** A random URL-safe token with `bytes` bytes of entropy. */
export function randomToken(bytes = 32): string {
  return toBase64Url(crypto.getRandomValues(new Uint8Array(bytes)));
}

/**
 * Compares two strings in time that depends only on their lengths' maximum, by
 * comparing their SHA-256 digests byte by byte without early exit.
 */
export async function constantTimeEqual(a: string, b: string): Promise<boolean> {
  const [da, db] = await Promise.all([crypto.subtle.digest("SHA-256", encoder.encode(a)), crypto.subtle.digest("SHA-256", encoder.encode(b))]);
  const x = new Uint8Array(da);
  const y = new Uint8Array(db);
  let diff = 0;
  for (let i = 0; i < x.length; i++) diff |= x[i]! ^ y[i]!;
  return diff === 0;
}

/** Shows a secret as its first 5 and last 4 characters, e.g. `sk-ab…wxyz`. */
export function maskSecret(secret: string): string {
  if (secret.length <= 12) return `${secret.slice(0, 2)}…${secret.slice(-2)}`;
  return `${secret.slice(0, 5)}…${secret.slice(-4)}`;
}

/** PBKDF2 iterations for a backup's passphrase: the most the Workers runtime allows. */
export const PASSPHRASE_ITERATIONS = 100_000;

/** An AES-GCM key derived from a passphrase (PBKDF2-SHA-256), for archives that must not depend on a deployment's secrets. */
export async function passphraseKey(passphrase: string, salt: Uint8Array<ArrayBuffer>, iterations = PASSPHRASE_ITERATIONS): Promise<CryptoKey> {
  const material = await crypto.subtle.importKey("raw", encoder.encode(passphrase), "PBKDF2", false, ["deriveKey"]);
  return crypto.subtle.deriveKey({ name: "PBKDF2", hash: "SHA-256", salt, iterations }, material, { name: "AES-GCM", length: 256 }, false, [
    "encrypt",
    "decrypt",
  ]);
}

/** Seals text under a passphrase: the salt, the iterations and the sealed text, all needed (with the passphrase) to open it. */
export async function sealWithPassphrase(passphrase: string, plaintext: string): Promise<{ salt: string; iterations: number; sealed: string }> {
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const key = await passphraseKey(passphrase, salt);
  return { salt: toBase64Url(salt), iterations: PASSPHRASE_ITERATIONS, sealed: await encryptSecret(key, plaintext) };
}

/** Opens what `sealWithPassphrase` sealed; throws when the passphrase is wrong or the text was changed. */
export async function openWithPassphrase(passphrase: string, sealed: { salt: string; iterations: number; sealed: string }): Promise<string> {
  const key = await passphraseKey(passphrase, fromBase64Url(sealed.salt), sealed.iterations);
  return decryptSecret(key, sealed.sealed);
}
