import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { describe, expect, it } from "vitest";

/**
 * The architecture's rules, checked on the source (docs/architecture.md): who
 * may import whom, SQL only in storage modules, no harness code in the folders
 * that are deployed.
 */
const ROOT = path.resolve(import.meta.dirname, "../..");

/** Every .ts file under `dir` (relative to the root), generated type files left out. */
function sources(dir: string): string[] {
  const out: string[] = [];
  const walk = (d: string) => {
    for (const entry of readdirSync(path.join(ROOT, d), { withFileTypes: true })) {
      const rel = path.join(d, entry.name);
      if (entry.isDirectory()) walk(rel);
      else if (entry.name.endsWith(".ts") && !entry.name.endsWith(".d.ts")) out.push(rel);
    }
  };
  walk(dir);
  return out;
}

/** The project folders a file imports from ("schema", "storage", "gateway", …), by its relative imports. */
function importedFolders(file: string): Set<string> {
  const text = readFileSync(path.join(ROOT, file), "utf8");
  const folders = new Set<string>();
  for (const m of text.matchAll(/^\s*(?:import|export)[^"']*?from\s+["'](\.[^"']+)["']/gm)) {
    const target = path.relative(ROOT, path.resolve(path.dirname(path.join(ROOT, file)), m[1]!));
    folders.add(target.split(path.sep)[0]!);
  }
  return folders;
}

/** String and template literals of a file that read as SQL statements. */
function sqlIn(file: string): string[] {
  const text = readFileSync(path.join(ROOT, file), "utf8");
  const literals = text.match(/`[^`]*`|"(?:[^"\\\n]|\\.)*"/g) ?? [];
  return literals.filter((l) => /\b(SELECT\s.+\sFROM|INSERT\s+(OR\s+\w+\s+)?INTO|DELETE\s+FROM|UPDATE\s+\w+\s+SET|CREATE\s+TABLE)\b/is.test(l));
}

const RUNTIMES = ["gateway", "stats-consumer", "scheduler"] as const;
const PRODUCTION = ["schema", "storage", ...RUNTIMES];

describe("the layout", () => {
  it("keeps imports flowing one way: schema imports nothing of ours, storage only schema, the runtimes not each other", () => {
    const allowed: Record<string, string[]> = {
      schema: ["schema"],
      storage: ["storage", "schema"],
      // The gateway hosts the scheduler's cron, and wires it at its entry.
      gateway: ["gateway", "schema", "storage", "scheduler"],
      "stats-consumer": ["stats-consumer", "schema", "storage"],
      scheduler: ["scheduler", "schema", "storage"],
    };
    const wrong: string[] = [];
    for (const folder of PRODUCTION) {
      for (const file of sources(folder)) {
        for (const target of importedFolders(file)) if (!allowed[folder]!.includes(target)) wrong.push(`${file} imports ${target}/`);
      }
    }
    expect(wrong).toEqual([]);
  });

  it("keeps SQL in storage modules: the shared storage/ and each runtime's storage/ folder", () => {
    const outside = PRODUCTION.flatMap(sources)
      .filter((file) => !file.startsWith(`storage${path.sep}`) && !file.split(path.sep).includes("storage"))
      .flatMap((file) => sqlIn(file).map((sql) => `${file}: ${sql.slice(0, 60)}`));
    expect(outside).toEqual([]);
  });

  it("finds SQL where there is some (the check above can fail)", () => {
    expect(sqlIn("storage/settings.ts").length).toBeGreaterThan(0);
  });

  it("keeps harness code out of the deployed folders: nothing there imports tools/, test/ or bench/", () => {
    const harness = PRODUCTION.flatMap(sources).filter((file) => [...importedFolders(file)].some((f) => f === "tools" || f === "test" || f === "bench"));
    expect(harness).toEqual([]);
  });
});

describe("the schema version", () => {
  it("names the newest migration file, so the deep health check asks for the migrations this code needs", async () => {
    const { SCHEMA_MIGRATION } = await import("../../schema/version");
    const files = readdirSync(path.join(ROOT, "schema/migrations"))
      .filter((f) => /^\d{4}_.*\.sql$/.test(f))
      .sort();
    expect(SCHEMA_MIGRATION).toBe(files.at(-1));
  });
});
