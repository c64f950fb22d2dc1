import { decryptSecret, importEncryptionKey } from "./crypto";

/**
 * Decrypts upstream keys once per isolate: the AES key is imported once per secret
 * value and each ciphertext decrypted once, so the request path does no crypto
 * after warm-up. The map is bounded so a pool that churns keys cannot grow it forever.
 */
export class SecretCache {
  private keyPromise: Promise<CryptoKey> | null = null;
  private readonly plain = new Map<string, Promise<string>>();

  constructor(readonly encryptionKey: string) {}

  cryptoKey(): Promise<CryptoKey> {
    this.keyPromise ??= importEncryptionKey(this.encryptionKey);
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
