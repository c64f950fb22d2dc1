/**
 * What an upstream said when it refused an attempt, short enough for the
 * request log and with anything that looks like a credential taken out:
 * providers echo keys back ("Incorrect API key provided: sk-abc…"), and the
 * log is read by people who must not see them.
 */

/** The longest excerpt kept. */
export const ERROR_EXCERPT_CHARS = 300;

/** Prefixed keys (sk-…, kp-…, gsk_…, Bearer …) and any long unbroken run of key-like characters. */
const SECRET_LIKE = /\b(?:bearer\s+\S+|(?:sk|kp|pk|rk|gsk|key|api[-_]?key)[-_][A-Za-z0-9_\-.*…]{4,})|[A-Za-z0-9_\-]{24,}/gi;

/** The message of an upstream's error body (OpenAI's `error.message`, a bare `message`, else the text), redacted and cut. */
export function errorExcerpt(text: string): string | null {
  let message = text.trim();
  if (message.startsWith("{")) {
    try {
      const json = JSON.parse(message) as { error?: { message?: unknown } | string; message?: unknown; detail?: unknown };
      const candidate = typeof json.error === "object" && json.error !== null ? json.error.message : (json.error ?? json.message ?? json.detail);
      if (typeof candidate === "string") message = candidate;
    } catch {
      // Not JSON after all: keep the text.
    }
  }
  message = message.replace(/\s+/g, " ").replace(SECRET_LIKE, "[redacted]").trim();
  if (message === "") return null;
  return message.length > ERROR_EXCERPT_CHARS ? `${message.slice(0, ERROR_EXCERPT_CHARS - 1)}…` : message;
}
