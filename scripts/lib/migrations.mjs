// @ts-check
/** Reads the D1 migrations as statement lists, in order, for tools that apply them without wrangler. */
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { ROOT } from "./stack.mjs";

/** Every statement of every migration in schema/migrations, in file order. */
export function migrationStatements() {
  const dir = path.join(ROOT, "schema/migrations");
  return readdirSync(dir)
    .filter((f) => /^\d{4}_.*\.sql$/.test(f))
    .sort()
    .flatMap((f) =>
      readFileSync(path.join(dir, f), "utf8")
        .split("\n")
        .map((line) => line.replace(/--.*$/, ""))
        .join("\n")
        .split(/;\s*(?:\n|$)/)
        .map((s) => s.trim())
        .filter(Boolean),
    );
}
