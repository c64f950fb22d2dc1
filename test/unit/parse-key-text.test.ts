import { describe, expect, it } from "vitest";
import { parseKeyText } from "../../gateway/logic/parse-key-text";

const k = (n: number) => `sk-${String(n).padStart(20, "0")}`;

describe("parseKeyText", () => {
  it("splits on newlines, commas, semicolons and spaces, trimming and de-duplicating", () => {
    const text = `  ${k(1)},${k(2)} ;${k(3)}\r\n\t${k(4)}\n\n${k(1)}  ${k(5)}`;
    expect(parseKeyText(text)).toEqual({ keys: [k(1), k(2), k(3), k(4), k(5)], repeats: 1, invalid: [] });
  });

  it("reports malformed tokens with their line numbers", () => {
    const text = `${k(1)}\nshort\n${k(2)} sk-密钥-0000000000000000\n${"x".repeat(600)}`;
    const parsed = parseKeyText(text);
    expect(parsed.keys).toEqual([k(1), k(2)]);
    expect(parsed.invalid.map((i) => i.line)).toEqual([2, 3, 4]);
    expect(parsed.invalid[0]!.reason).toMatch(/shorter/);
  });

  it("returns nothing for blank text", () => {
    expect(parseKeyText(" \n , ;")).toEqual({ keys: [], repeats: 0, invalid: [] });
  });
});
