/** What batch-adding keys from free text found. */
export interface ParsedKeyText {
  /** Distinct, well-formed keys in the order they appeared. */
  keys: string[];
  /** Keys that appeared more than once in the text (each extra occurrence counts). */
  repeats: number;
  invalid: { line: number; reason: string }[];
}

const KEY_PATTERN = /^[\x21-\x7e]+$/;
const MIN_KEY_LENGTH = 16;
const MAX_KEY_LENGTH = 512;

/**
 * Splits pasted text into keys: separated by newlines, commas, semicolons or any
 * whitespace, trimmed, de-duplicated; malformed tokens are reported by line number.
 */
export function parseKeyText(text: string): ParsedKeyText {
  const seen = new Set<string>();
  const keys: string[] = [];
  const invalid: { line: number; reason: string }[] = [];
  let repeats = 0;
  const lines = text.split(/\r\n|\r|\n/);
  lines.forEach((lineText, index) => {
    for (const token of lineText.split(/[,;\s]+/)) {
      if (token === "") continue;
      const line = index + 1;
      if (!KEY_PATTERN.test(token)) invalid.push({ line, reason: "contains characters a key cannot have" });
      else if (token.length < MIN_KEY_LENGTH) invalid.push({ line, reason: `shorter than ${MIN_KEY_LENGTH} characters` });
      else if (token.length > MAX_KEY_LENGTH) invalid.push({ line, reason: `longer than ${MAX_KEY_LENGTH} characters` });
      else if (seen.has(token)) repeats++;
      else {
        seen.add(token);
        keys.push(token);
      }
    }
  });
  return { keys, repeats, invalid };
}
