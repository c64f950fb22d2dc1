import type { Context, Next } from "hono";
import type { GatewayHono } from "./context";
import { KeypoolError } from "./errors";

export type SecretName = "ADMIN_PASSWORD" | "JWT_SECRET" | "KEY_ENCRYPTION_KEY" | "ALERT_ENCRYPTION_KEY";

/** The 503 for secrets a route needs but the Worker lacks, naming them, or null when all are set. */
export function missingSecrets(env: GatewayEnv, names: readonly SecretName[]): KeypoolError | null {
  const missing = names.filter((n) => typeof env[n] !== "string" || env[n].trim() === "");
  if (missing.length === 0) return null;
  return new KeypoolError(
    503,
    "server_error",
    `Keypool is not configured: set the secret(s) ${missing.join(", ")} (wrangler secret put NAME -c wrangler.gateway.toml).`,
    "missing_secret",
  );
}

/**
 * Refuses to serve when a secret the routes need is missing, naming it: there is
 * never a default password or key to fall back to.
 */
export function requireSecrets(...names: SecretName[]) {
  return async function requireSecretsMiddleware(c: Context<GatewayHono>, next: Next) {
    const missing = missingSecrets(c.env, names);
    if (missing) throw missing;
    await next();
  };
}

/** Headers for dashboard pages: no inline script, no third-party origin, no framing. */
export const DASHBOARD_SECURITY_HEADERS: Record<string, string> = {
  "content-security-policy":
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
};
