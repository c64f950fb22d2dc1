import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { BEGIN, END, machine, runHeading, writeGenerated } from "../../scripts/lib/report-page.mjs";

const dirs: string[] = [];
afterEach(() => dirs.splice(0).forEach((d) => rmSync(d, { recursive: true, force: true })));
const page = () => {
  const dir = mkdtempSync(path.join(tmpdir(), "keypool-page-"));
  dirs.push(dir);
  return path.join(dir, "performance.md");
};

describe("pages a command writes (docs/performance.md, docs/reliability.md)", () => {
  it("replaces only its generated section, keeping what is written by hand around it", () => {
    const file = page();
    writeFileSync(file, `# Performance\n\nHow to read it.\n\n${BEGIN}\n\nold tables\n\n${END}\n\n## Analysis\n\nWritten by hand.\n`);
    writeGenerated(file, "| new | table |", "Performance");
    const text = readFileSync(file, "utf8");
    expect(text).toContain("How to read it.");
    expect(text).toContain("## Analysis\n\nWritten by hand.");
    expect(text).toContain("| new | table |");
    expect(text).not.toContain("old tables");
    writeGenerated(file, "| newer |", "Performance");
    expect(readFileSync(file, "utf8").split(BEGIN)).toHaveLength(2);
  });

  it("creates a missing page, and adds the section to a page without one", () => {
    const file = page();
    writeGenerated(file, "figures", "Reliability");
    expect(readFileSync(file, "utf8")).toMatch(/^# Reliability\n\n<!-- generated: begin/);
    writeFileSync(file, "# Reliability\n\nNo section yet.\n");
    writeGenerated(file, "figures", "Reliability");
    expect(readFileSync(file, "utf8")).toBe(`# Reliability\n\nNo section yet.\n\n${BEGIN}\n\nfigures\n\n${END}\n`);
  });

  it("heads a run with when, the commit, the machine and the command", () => {
    const heading = runHeading("npm run bench -- --runs 3", new Date("2026-12-04T10:00:00Z"), new Date("2026-12-04T10:12:00Z"));
    expect(heading).toContain("2026-12-04T10:00:00Z to 2026-12-04T10:12:00Z");
    expect(heading).toMatch(/\*\*Commit:\*\* ([0-9a-f]{12}|unknown)/);
    expect(heading).toContain("`npm run bench -- --runs 3`");
    expect(machine()).toMatch(/^\d+ cores \(.+\), \d+ GiB, /);
  });
});
