import { KeypoolError } from "../errors";

/** Refuses bytes that are not UTF-8; decoding whole bodies (no `stream`), it keeps no state between requests. */
const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/**
 * A request body as text, or a 400 when its bytes are not UTF-8: JSON exchanged
 * between systems must be UTF-8 (RFC 8259 §8.1), and a lenient decoder would
 * store U+FFFD in place of whatever the client meant.
 */
export function decodeUtf8Body(bytes: ArrayBuffer): string {
  try {
    return strictUtf8.decode(bytes);
  } catch {
    throw new KeypoolError(400, "invalid_request_error", "The request body is not valid UTF-8 (JSON must be UTF-8, RFC 8259 §8.1).", "invalid_encoding");
  }
}
