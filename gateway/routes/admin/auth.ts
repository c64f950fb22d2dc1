import { Hono } from "hono";
import { getCookie } from "hono/cookie";
import { loginBodySchema, loginResponseSchema, logoutBodySchema, logoutResponseSchema, sessionViewSchema, type SessionView } from "../../../schema";
import type { GatewayHono } from "../../context";
import { KeypoolError } from "../../errors";
import { SESSION_COOKIE, SESSION_SECONDS, issueAdminToken, sessionCookie, verifyAdminToken, type AdminSession } from "../../logic/admin-session";
import { optionalSecret } from "../../logic/secrets";
import { constantTimeEqual } from "../../../schema/crypto";
import { clearLoginFailures, loginLockedUntil, recordLoginFailure, revokeAllSessions, revokeSession, sessionIsValid } from "../../storage/admin-auth-db";
import { op } from "./openapi";
import type { AdminContext } from "./shared";

/** The client a failed login is counted against: its IP as Cloudflare saw it. */
function clientOf(c: AdminContext): string {
  return c.req.header("cf-connecting-ip") ?? "unknown";
}

function tokenOf(c: AdminContext): string | undefined {
  return c.req.header("authorization")?.match(/^Bearer\s+(\S+)$/i)?.[1] ?? getCookie(c, SESSION_COOKIE);
}

/**
 * A token's session, signed with JWT_SECRET or — while `npm run rotate` moves to a
 * new one — with JWT_SECRET_NEXT, so sessions from before the rotation keep working.
 */
async function verifySession(env: GatewayEnv, token: string, now: number): Promise<AdminSession | null> {
  const next = optionalSecret(env, "JWT_SECRET_NEXT");
  return (await verifyAdminToken(env.JWT_SECRET, token, now)) ?? (next ? await verifyAdminToken(next, token, now) : null);
}

/** The request's admin session (the cookie or a Bearer token): signed with JWT_SECRET, unexpired, not logged out; else null. */
async function currentSession(c: AdminContext): Promise<AdminSession | null> {
  const token = tokenOf(c);
  const session = token ? await verifySession(c.env, token, Date.now()) : null;
  if (!session || !(await sessionIsValid(c.env.DB, session.jti, session.issuedAtMs))) return null;
  return session;
}

/** Rejects the request with 401 unless it carries a valid admin session. */
export function requireAdmin() {
  return async function requireAdminMiddleware(c: AdminContext, next: () => Promise<void>) {
    const session = await currentSession(c);
    if (!session) {
      throw new KeypoolError(401, "authentication_error", "Log in to the admin API first.", "admin_login_required");
    }
    c.set("admin", session.subject);
    c.set("session", session);
    await next();
  };
}

/**
 * Refuses state-changing requests from another origin. With the SameSite=Strict
 * cookie and JSON-only bodies this closes cross-site request forgery: a browser
 * always sends Origin on such requests, scripts and SDKs send none.
 */
export function sameOriginOnly() {
  return async function sameOriginOnlyMiddleware(c: AdminContext, next: () => Promise<void>) {
    const origin = c.req.header("origin");
    if (c.req.method !== "GET" && c.req.method !== "HEAD" && origin !== undefined && origin !== new URL(c.req.url).origin) {
      throw new KeypoolError(403, "permission_error", "Cross-origin admin requests are refused.", "cross_origin_refused");
    }
    await next();
  };
}

/** Login, logout and the session check. */
export function authRoutes() {
  const app = new Hono<GatewayHono>();

  app.post(
    "/login",
    op(
      {
        tag: "session",
        public: true,
        summary: "Log in",
        description:
          "Checks the admin password (in constant time) and starts a 12-hour session: the answer's token, and an HttpOnly, Secure, SameSite=Strict cookie.",
        body: loginBodySchema,
        ok: { description: "The session's token and when it expires (epoch ms).", schema: loginResponseSchema },
        errors: { 401: "Wrong password.", 429: "Five failed logins within a minute from this client's IP; Retry-After says when to try again." },
      },
      async (c, { body }) => {
        const now = Date.now();
        const client = clientOf(c);
        const lockedUntil = await loginLockedUntil(c.env.DB, client, now);
        if (lockedUntil !== null) {
          const seconds = Math.ceil((lockedUntil - now) / 1000);
          throw new KeypoolError(429, "rate_limit_error", `Too many failed logins; try again in ${seconds}s.`, "login_rate_limited", null, {
            "retry-after": String(seconds),
          });
        }
        const { password } = body;
        if (!(await constantTimeEqual(password, c.env.ADMIN_PASSWORD))) {
          await recordLoginFailure(c.env.DB, client, now);
          throw new KeypoolError(401, "authentication_error", "Wrong password.", "wrong_password", "password");
        }
        await clearLoginFailures(c.env.DB, client);
        // While a rotation is under way, new sessions are signed with the secret it moves to.
        const session = await issueAdminToken(optionalSecret(c.env, "JWT_SECRET_NEXT") ?? c.env.JWT_SECRET, now);
        c.header("set-cookie", sessionCookie(session.token, SESSION_SECONDS));
        return c.json(session);
      },
    ),
  );

  app.post(
    "/logout",
    op(
      {
        tag: "session",
        public: true,
        summary: "Log out",
        description:
          "Ends this session (its token stops working) and clears the cookie; with `everywhere`, ends every session issued so far, which needs a valid one.",
        body: logoutBodySchema,
        ok: { description: "Logged out.", schema: logoutResponseSchema },
        errors: { 401: "`everywhere` without a valid session." },
      },
      async (c, { body }) => {
        const { everywhere } = body;
        const token = tokenOf(c);
        const session = token ? await verifySession(c.env, token, Date.now()) : null;
        if (session) await revokeSession(c.env.DB, session.jti, session.expiresAtMs, Date.now());
        if (everywhere) {
          if (!session) throw new KeypoolError(401, "authentication_error", "Log in to log out everywhere.", "admin_login_required");
          await revokeAllSessions(c.env.DB, Date.now());
        }
        c.header("set-cookie", sessionCookie("", 0));
        return c.json({ ok: true, everywhere });
      },
    ),
  );

  app.get(
    "/session",
    op(
      {
        tag: "session",
        public: true,
        summary: "Whether this request carries a valid session",
        // A visitor who is not logged in is not an error: the dashboard asks this on every load.
        description: "Never 401: a visitor who is not logged in gets `authenticated: false`.",
        ok: { description: "The session, if any.", schema: sessionViewSchema },
      },
      async (c) => {
        const session = await currentSession(c);
        const view: SessionView = session ? { authenticated: true, subject: session.subject, expiresAt: session.expiresAtMs } : { authenticated: false };
        return c.json(view);
      },
    ),
  );

  return app;
}
