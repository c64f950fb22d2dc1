import type { SnapshotClientKey } from "../../schema";
import { KeypoolError } from "../errors";
import { sha256Hex } from "../../schema/crypto";

/** Client keys look like `kp-` followed by 43 base64url characters. */
export const CLIENT_KEY_PREFIX = "kp-";

/** Hashes of the client keys this isolate has seen lately; most requests repeat a handful of keys. */
const hashes = new Map<string, string>();
const MAX_REMEMBERED_HASHES = 1_024;

async function hashOf(token: string): Promise<string> {
  const known = hashes.get(token);
  if (known !== undefined) return known;
  const hash = await sha256Hex(token);
  if (hashes.size >= MAX_REMEMBERED_HASHES) hashes.clear();
  hashes.set(token, hash);
  return hash;
}

function unauthorized(message: string, code: string): KeypoolError {
  return new KeypoolError(401, "authentication_error", message, code);
}

/**
 * Finds the client key a request presents (`Authorization: Bearer …`, or `x-api-key`
 * as some SDKs send) among the snapshot's hashes; 401 when it is missing, unknown,
 * disabled or expired.
 */
export async function authenticateClient(headers: Headers, byHash: Map<string, SnapshotClientKey>, now: number): Promise<SnapshotClientKey> {
  const auth = headers.get("authorization");
  const token = auth?.match(/^Bearer\s+(\S+)\s*$/i)?.[1] ?? headers.get("x-api-key")?.trim();
  if (!token) throw unauthorized("Missing API key: send your Keypool client key as 'Authorization: Bearer kp-…'.", "missing_api_key");
  const client = token.length <= 200 ? byHash.get(await hashOf(token)) : undefined;
  if (!client) throw unauthorized("Incorrect API key provided.", "invalid_api_key");
  if (!client.enabled) throw unauthorized("This client key is disabled.", "client_key_disabled");
  if (client.expiresAt !== null && client.expiresAt <= now) throw unauthorized("This client key has expired.", "client_key_expired");
  return client;
}

/** 403 unless the client key may use `model`. */
export function assertModelAllowed(client: SnapshotClientKey, model: string): void {
  if (client.models.length > 0 && !client.models.includes(model)) {
    throw new KeypoolError(403, "permission_error", `This client key may not use model '${model}'.`, "model_not_allowed", "model");
  }
}
