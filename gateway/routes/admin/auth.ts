import { Hono } from "hono";
import { getCookie } from "hono/cookie";
import { z } from "zod";
import { loginBodySchema, type SessionView } from "../../../schema";
import type { GatewayHono } from "../../context";
import { KeypoolError } from "../../errors";
import { SESSION_COOKIE, SESSION_SECONDS, issueAdminToken, sessionCookie, verifyAdminToken, type AdminSession } from "../../logic/admin-session";
import { constantTimeEqual } from "../../logic/crypto";
import {
  clearLoginFailures,
  loginLockedUntil,
  recordLoginFailure,
  revokeAllSessions,
  revokeSession,
  sessionIsValid,
} from "../../storage/admin-auth-db";
import { readBody, type AdminContext } from "./shared";

/** The client a failed login is counted against: its IP as Cloudflare saw it. */
function clientOf(c: AdminContext): string {
  return c.req.header("cf-connecting-ip") ?? "unknown";
}

function tokenOf(c: AdminContext): string | undefined {
  return c.req.header("authorization")?.match(/^Bearer\s+(\S+)$/i)?.[1] ?? getCookie(c, SESSION_COOKIE);
}

/** The request's admin session (the cookie or a Bearer token): signed with JWT_SECRET, unexpired, not logged out; else null. */
async function currentSession(c: AdminContext): Promise<AdminSession | null> {
  const token = tokenOf(c);
  const session = token ? await verifyAdminToken(c.env.JWT_SECRET, token, Date.now()) : null;
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

const logoutBodySchema = z.object({ everywhere: z.boolean().default(false) });

/** Login, logout and the session check. */
export function authRoutes() {
  const app = new Hono<GatewayHono>();

  app.post("/login", async (c) => {
    const now = Date.now();
    const client = clientOf(c);
    const lockedUntil = await loginLockedUntil(c.env.DB, client, now);
    if (lockedUntil !== null) {
      const seconds = Math.ceil((lockedUntil - now) / 1000);
      throw new KeypoolError(429, "rate_limit_error", `Too many failed logins; try again in ${seconds}s.`, "login_rate_limited", null, { "retry-after": String(seconds) });
    }
    const { password } = await readBody(c, loginBodySchema);
    if (!(await constantTimeEqual(password, c.env.ADMIN_PASSWORD))) {
      await recordLoginFailure(c.env.DB, client, now);
      throw new KeypoolError(401, "authentication_error", "Wrong password.", "wrong_password", "password");
    }
    await clearLoginFailures(c.env.DB, client);
    const session = await issueAdminToken(c.env.JWT_SECRET, now);
    c.header("set-cookie", sessionCookie(session.token, SESSION_SECONDS));
    return c.json(session);
  });

  app.post("/logout", async (c) => {
    const { everywhere } = await readBody(c, logoutBodySchema);
    const token = tokenOf(c);
    const session = token ? await verifyAdminToken(c.env.JWT_SECRET, token, Date.now()) : null;
    if (session) await revokeSession(c.env.DB, session.jti, session.expiresAtMs, Date.now());
    if (everywhere) {
      if (!session) throw new KeypoolError(401, "authentication_error", "Log in to log out everywhere.", "admin_login_required");
      await revokeAllSessions(c.env.DB, Date.now());
    }
    c.header("set-cookie", sessionCookie("", 0));
    return c.json({ ok: true, everywhere });
  });

  // A visitor who is not logged in is not an error: the dashboard asks this on every load.
  app.get("/session", async (c) => {
    const session = await currentSession(c);
    const view: SessionView = session ? { authenticated: true, subject: session.subject, expiresAt: session.expiresAtMs } : { authenticated: false };
    return c.json(view);
  });

  return app;
}
