/**
 * Token estimates for answers whose upstream reports no usage. CJK characters
 * (Han, kana, Hangul) cost about 0.7 token each, other text about one token per
 * four characters — close to OpenAI's tokenizers for Chinese and English without
 * shipping one. Events built from these are marked `estimated`.
 */

const CJK = /[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]/g;
/** Tokens a chat message costs beyond its text, and the reply's priming. */
const PER_MESSAGE = 3;
const REPLY_PRIMING = 3;

/** Estimated tokens of a piece of text. */
export function estimateTextTokens(text: string): number {
  if (text === "") return 0;
  const cjk = text.match(CJK)?.length ?? 0;
  return Math.ceil(cjk * 0.7 + (text.length - cjk) / 4);
}

/** Every string inside a JSON value (message contents, tool arguments, input arrays). */
function collectText(value: unknown, out: string[], depth = 0): void {
  if (depth > 32) return;
  if (typeof value === "string") out.push(value);
  else if (Array.isArray(value)) for (const v of value) collectText(v, out, depth + 1);
  else if (typeof value === "object" && value !== null) for (const v of Object.values(value)) collectText(v, out, depth + 1);
}

/** Estimated prompt tokens of a request body: chat messages, `input` or `prompt`. */
export function estimatePromptTokens(body: unknown): number {
  if (typeof body !== "object" || body === null) return 0;
  const b = body as { messages?: unknown; input?: unknown; prompt?: unknown; instructions?: unknown };
  const parts: string[] = [];
  collectText([b.messages, b.input, b.prompt, b.instructions], parts);
  const messages = Array.isArray(b.messages) ? b.messages.length : 0;
  const text = parts.reduce((n, p) => n + estimateTextTokens(p), 0);
  return text + (messages > 0 ? messages * PER_MESSAGE + REPLY_PRIMING : 0);
}

/**
 * The generated text of an answer, JSON or one stream chunk: chat `message` /
 * `delta` content, reasoning and tool-call arguments, completions `text`, and the
 * Responses API's `output_text` / `delta`.
 */
export function answerText(body: unknown): string {
  if (typeof body !== "object" || body === null) return "";
  const b = body as Record<string, unknown>;
  const parts: string[] = [];
  if (Array.isArray(b.choices)) {
    for (const choice of b.choices as Record<string, unknown>[]) {
      if (typeof choice?.text === "string") parts.push(choice.text);
      for (const m of [choice?.message, choice?.delta] as Record<string, unknown>[]) {
        if (!m) continue;
        for (const field of ["content", "reasoning_content", "reasoning"]) if (typeof m[field] === "string") parts.push(m[field] as string);
        if (Array.isArray(m.tool_calls))
          collectText(
            m.tool_calls.map((t: { function?: { arguments?: unknown } }) => t?.function?.arguments),
            parts,
          );
      }
    }
  }
  if (typeof b.output_text === "string") parts.push(b.output_text);
  if (b.type === "response.output_text.delta" && typeof b.delta === "string") parts.push(b.delta);
  if (typeof b.text === "string" && !Array.isArray(b.choices)) parts.push(b.text);
  return parts.join("");
}
