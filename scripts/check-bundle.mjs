// @ts-check
/** Fails the build when the dashboard's gzipped size passes its budget; prints the figure either way. */
import { readdirSync, readFileSync, statSync } from "node:fs";
import path from "node:path";
import { gzipSync } from "node:zlib";
import { ROOT } from "./lib/stack.mjs";

const BUDGET = 250 * 1024;
const dist = path.join(ROOT, "admin/dist");
/** @type {string[]} */
const files = [];
/** @param {string} dir */
const walk = (dir) => {
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) walk(p);
    else files.push(p);
  }
};
walk(dist);
const gzipped = files.reduce((n, f) => n + gzipSync(readFileSync(f)).length, 0);
console.log(`dashboard bundle: ${(gzipped / 1024).toFixed(1)} kB gzipped (budget ${BUDGET / 1024} kB), ${files.length} files`);
if (gzipped > BUDGET) {
  console.error("the dashboard is over its size budget");
  process.exit(1);
}
