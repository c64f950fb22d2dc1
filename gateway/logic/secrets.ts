import { decryptSecret, importEncryptionKey } from "../../schema/crypto";

/**
 * Decrypts upstream keys once per isolate: the AES key is imported once per secret
 * value and each ciphertext decrypted once, so the request path does no crypto
 * after warm-up. The map is bounded so a pool that churns keys cannot grow it forever.
 */
export class SecretCache {
  private keyPromise: Promise<CryptoKey> | null = null;
  private readonly plain = new Map<string, Promise<string>>();

  constructor(
    readonly encryptionKey: string,
    private readonly secretName = "KEY_ENCRYPTION_KEY",
  ) {}

  cryptoKey(): Promise<CryptoKey> {
    this.keyPromise ??= importEncryptionKey(this.encryptionKey, this.secretName);
    return this.keyPromise;
  }

  decrypt(sealed: string): Promise<string> {
    let p = this.plain.get(sealed);
    if (!p) {
      if (this.plain.size >= 100_000) this.plain.clear();
      p = this.cryptoKey().then((k) => decryptSecret(k, sealed));
      p.catch(() => this.plain.delete(sealed));
      this.plain.set(sealed, p);
    }
    return p;
  }
}

let shared: SecretCache | null = null;

/** The isolate's cache for this encryption key (a new one if the secret was rotated). */
export function secretCacheFor(encryptionKey: string): SecretCache {
  if (shared?.encryptionKey === encryptionKey) return shared;
  shared = new SecretCache(encryptionKey);
  return shared;
}

let alerts: SecretCache | null = null;

/** The isolate's cache for alert destinations, sealed under ALERT_ENCRYPTION_KEY; throws when the secret is not set. */
export function alertSecretCacheFor(encryptionKey: string | undefined): SecretCache {
  if (!encryptionKey) throw new Error("ALERT_ENCRYPTION_KEY is not set");
  if (alerts?.encryptionKey === encryptionKey) return alerts;
  alerts = new SecretCache(encryptionKey, "ALERT_ENCRYPTION_KEY");
  return alerts;
}
