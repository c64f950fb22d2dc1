/**
 * Server-sent events read as bytes, without decoding them: where events end,
 * and where one carries a usage object. The stream relay hands each chunk of a
 * stream on as it came and decodes only the event that holds the usage, so a
 * long answer costs a byte scan per chunk. Line ends are CRLF, LF or a lone CR,
 * as the SSE spec allows; an event ends at a blank line (two line ends in a row).
 */

const CR = 13;
const LF = 10;
const QUOTE = 0x22;
const COLON = 0x3a;
const SPACE = 0x20;
const TAB = 0x09;
const BRACE = 0x7b;
/** `usage"` after the opening quote. */
const USAGE = [0x75, 0x73, 0x61, 0x67, 0x65, QUOTE];

/**
 * The length of the line end at `i` (1 or 2), 0 when there is none, or -1 for a
 * CR that is the last byte of `b`: it may be the first half of a CRLF whose LF
 * has not arrived yet.
 */
function lineEndAt(b: Uint8Array, i: number): number {
  const c = b[i];
  if (c === LF) return 1;
  if (c !== CR) return 0;
  if (i + 1 >= b.length) return -1;
  return b[i + 1] === LF ? 2 : 1;
}

/**
 * Where each complete event in `b[from..]` ends (the index after the blank line
 * closing it), in order. What follows the last is an event not yet complete.
 */
export function eventEnds(b: Uint8Array, from = 0): number[] {
  const ends: number[] = [];
  let i = from;
  while (i < b.length) {
    const first = lineEndAt(b, i);
    if (first === 0) {
      i++;
      continue;
    }
    if (first < 0) break;
    const j = i + first;
    const second = j < b.length ? lineEndAt(b, j) : 0;
    if (second < 0) break;
    if (second === 0) {
      i = j;
      continue;
    }
    i = j + second;
    ends.push(i);
  }
  return ends;
}

/**
 * Where the last complete event in `b` ends, or 0 when none is complete. The
 * common case — a chunk that ends with LF LF, which always closes an event — is
 * answered from its last two bytes.
 */
export function lastEventEnd(b: Uint8Array): number {
  const n = b.length;
  if (n >= 2 && b[n - 1] === LF && b[n - 2] === LF) return n;
  const ends = eventEnds(b);
  return ends.length > 0 ? ends[ends.length - 1]! : 0;
}

/**
 * The index of the first `"usage"` key in `b[from..to)` whose value is an
 * object (`"usage": {`, any blanks around the colon), or -1. OpenAI sends
 * `"usage":null` in every chunk when usage was asked for: those do not match.
 */
export function findUsageObject(b: Uint8Array, from = 0, to = b.length): number {
  const last = to - USAGE.length - 2;
  for (let i = from; i <= last; i++) {
    if (b[i] !== QUOTE || b[i + 1] !== USAGE[0]) continue;
    let k = 1;
    while (k < USAGE.length && b[i + 1 + k] === USAGE[k]) k++;
    if (k < USAGE.length) continue;
    let j = i + 1 + USAGE.length;
    while (j < to && (b[j] === SPACE || b[j] === TAB || b[j] === CR || b[j] === LF)) j++;
    if (b[j] !== COLON) continue;
    j++;
    while (j < to && (b[j] === SPACE || b[j] === TAB || b[j] === CR || b[j] === LF)) j++;
    if (j < to && b[j] === BRACE) return i;
  }
  return -1;
}
