import { SignJWT, jwtVerify } from "jose";

const ISSUER = "keypool";
const AUDIENCE = "keypool-admin";
/** Admin sessions last 12 hours at most. */
export const SESSION_SECONDS = 12 * 60 * 60;
export const SESSION_COOKIE = "keypool_admin";

const encoder = new TextEncoder();

/** Issues an HS256 admin JWT with issuer, audience, expiry and a unique `jti`. */
export async function issueAdminToken(secret: string, nowMs: number): Promise<{ token: string; expiresAt: number }> {
  const iat = Math.floor(nowMs / 1000);
  const exp = iat + SESSION_SECONDS;
  const token = await new SignJWT({})
    .setProtectedHeader({ alg: "HS256", typ: "JWT" })
    .setIssuer(ISSUER)
    .setAudience(AUDIENCE)
    .setSubject("admin")
    .setJti(crypto.randomUUID())
    .setIssuedAt(iat)
    .setExpirationTime(exp)
    .sign(encoder.encode(secret));
  return { token, expiresAt: exp * 1000 };
}

/** The token's subject when it is an unexpired HS256 admin token signed with `secret`; null otherwise. */
export async function verifyAdminToken(secret: string, token: string, nowMs: number): Promise<string | null> {
  try {
    const { payload } = await jwtVerify(token, encoder.encode(secret), {
      algorithms: ["HS256"],
      issuer: ISSUER,
      audience: AUDIENCE,
      currentDate: new Date(nowMs),
    });
    return payload.sub ?? null;
  } catch {
    return null;
  }
}

/** The Set-Cookie value carrying the session (or clearing it when `token` is empty). */
export function sessionCookie(token: string, maxAgeSeconds: number): string {
  return `${SESSION_COOKIE}=${token}; Path=/admin; HttpOnly; Secure; SameSite=Strict; Max-Age=${maxAgeSeconds}`;
}
