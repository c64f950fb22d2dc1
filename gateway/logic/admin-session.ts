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
  // `ims`: the issue time in ms, so "log out everywhere" also voids tokens from the same second.
  const token = await new SignJWT({ ims: nowMs })
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

/** What a valid admin token says about its session. */
export interface AdminSession {
  subject: string;
  jti: string;
  issuedAtMs: number;
  expiresAtMs: number;
}

/**
 * The session of an unexpired HS256 admin token signed with `secret`, with our
 * issuer and audience; null for anything else (another algorithm, `alg: none`,
 * another key, a tampered or expired token).
 */
export async function verifyAdminToken(secret: string, token: string, nowMs: number): Promise<AdminSession | null> {
  try {
    const { payload } = await jwtVerify(token, encoder.encode(secret), {
      algorithms: ["HS256"],
      issuer: ISSUER,
      audience: AUDIENCE,
      currentDate: new Date(nowMs),
      requiredClaims: ["sub", "jti", "exp", "iat"],
    });
    const ims = typeof payload.ims === "number" ? payload.ims : payload.iat! * 1000;
    return { subject: payload.sub!, jti: payload.jti!, issuedAtMs: ims, expiresAtMs: payload.exp! * 1000 };
  } catch {
    return null;
  }
}

/** The Set-Cookie value carrying the session (or clearing it when `token` is empty). */
export function sessionCookie(token: string, maxAgeSeconds: number): string {
  return `${SESSION_COOKIE}=${token}; Path=/admin; HttpOnly; Secure; SameSite=Strict; Max-Age=${maxAgeSeconds}`;
}
