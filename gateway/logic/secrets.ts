import { decryptSecret, importEncryptionKey } from "../../schema/crypto";

/**
 * Decrypts upstream keys once per isolate: the AES key is imported once per secret
 * value and each ciphertext decrypted once, so the request path does no crypto
 * after warm-up. The map is bounded so a pool that churns keys cannot grow it forever.
 *
 * During a rotation (`npm run rotate`) a second key is set, `<NAME>_NEXT`: what it
 * sealed opens too, and everything sealed from then on is sealed under it.
 */
export class SecretCache {
  private keyPromise: Promise<CryptoKey> | null = null;
  private nextPromise: Promise<CryptoKey> | null = null;
  private readonly plain = new Map<string, Promise<string>>();

  constructor(
    readonly encryptionKey: string,
    private readonly secretName = "KEY_ENCRYPTION_KEY",
    readonly nextKey: string | undefined = undefined,
  ) {}

  cryptoKey(): Promise<CryptoKey> {
    this.keyPromise ??= importEncryptionKey(this.encryptionKey, this.secretName);
    return this.keyPromise;
  }

  /** The key a rotation moves to, when one is under way. */
  nextCryptoKey(): Promise<CryptoKey> | null {
    if (!this.nextKey || this.nextKey === this.encryptionKey) return null;
    this.nextPromise ??= importEncryptionKey(this.nextKey, `${this.secretName}_NEXT`);
    return this.nextPromise;
  }

  /** The key new secrets are sealed under: the next one while rotating. */
  sealingKey(): Promise<CryptoKey> {
    return this.nextCryptoKey() ?? this.cryptoKey();
  }

  decrypt(sealed: string): Promise<string> {
    let p = this.plain.get(sealed);
    if (!p) {
      if (this.plain.size >= 100_000) this.plain.clear();
      p = this.cryptoKey()
        .then((k) => decryptSecret(k, sealed))
        .catch(async (err) => {
          const next = this.nextCryptoKey();
          if (!next) throw err;
          return decryptSecret(await next, sealed);
        });
      p.catch(() => this.plain.delete(sealed));
      this.plain.set(sealed, p);
    }
    return p;
  }
}

/** An optional secret: set only while a rotation is under way, so not in the Worker's typed bindings. */
export function optionalSecret(env: object, name: "KEY_ENCRYPTION_KEY_NEXT" | "JWT_SECRET_NEXT"): string | undefined {
  const value = (env as unknown as Record<string, unknown>)[name];
  return typeof value === "string" && value.trim() !== "" ? value : undefined;
}

let shared: SecretCache | null = null;

/** The isolate's cache for this encryption key and its rotation's next one (a new cache when either changes). */
export function secretCacheFor(encryptionKey: string, nextKey?: string): SecretCache {
  if (shared?.encryptionKey === encryptionKey && shared.nextKey === nextKey) return shared;
  shared = new SecretCache(encryptionKey, "KEY_ENCRYPTION_KEY", nextKey);
  return shared;
}

/** The upstream keys' cache for this Worker's secrets. */
export function keyringFor(env: { KEY_ENCRYPTION_KEY: string }): SecretCache {
  return secretCacheFor(env.KEY_ENCRYPTION_KEY, optionalSecret(env, "KEY_ENCRYPTION_KEY_NEXT"));
}

let alerts: SecretCache | null = null;

/** The isolate's cache for alert destinations, sealed under ALERT_ENCRYPTION_KEY; throws when the secret is not set. */
export function alertSecretCacheFor(encryptionKey: string | undefined): SecretCache {
  if (!encryptionKey) throw new Error("ALERT_ENCRYPTION_KEY is not set");
  if (alerts?.encryptionKey === encryptionKey) return alerts;
  alerts = new SecretCache(encryptionKey, "ALERT_ENCRYPTION_KEY");
  return alerts;
}
