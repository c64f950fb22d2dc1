import { describe, expect, it } from "vitest";
import { ERROR_EXCERPT_CHARS, errorExcerpt } from "../../gateway/logic/error-excerpt";

describe("errorExcerpt", () => {
  it("takes the message of OpenAI's error shape, a bare message, or the text", () => {
    expect(errorExcerpt('{"error":{"message":"Rate limit reached","type":"rate_limit_error"}}')).toBe("Rate limit reached");
    expect(errorExcerpt('{"message":"upstream overloaded"}')).toBe("upstream overloaded");
    expect(errorExcerpt("<html>502 Bad Gateway</html>")).toBe("<html>502 Bad Gateway</html>");
    expect(errorExcerpt("   ")).toBeNull();
  });

  it("never keeps anything that looks like a key, and cuts long messages", () => {
    const key = "sk-proj-abcdefghijklmnopqrstuvwxyz0123456789";
    for (const body of [
      `{"error":{"message":"Incorrect API key provided: ${key}. You can find your API key at https://platform.openai.com."}}`,
      `Authorization: Bearer ${key.slice(3)} was refused`,
      `key ${key.slice(0, 12)}…wxyz is invalid`,
    ]) {
      const excerpt = errorExcerpt(body)!;
      expect(excerpt).toContain("[redacted]");
      expect(excerpt).not.toMatch(/abcdefgh|proj-abc/);
    }
    expect(errorExcerpt("x ".repeat(1_000))!.length).toBe(ERROR_EXCERPT_CHARS);
  });
});
