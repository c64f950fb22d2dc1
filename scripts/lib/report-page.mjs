// @ts-check
/**
 * The pages of docs/ that a command writes (docs/performance.md by
 * `npm run bench -- --write …`, docs/reliability.md by `npm run chaos -- --write …`):
 * the command replaces only the part between its markers, with the run's tables
 * headed by when, at which commit, on which machine and with which command they
 * were measured. Whatever the page holds outside the markers is written by hand
 * and kept.
 */
import { execFileSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { ROOT } from "./stack.mjs";

export const BEGIN = "<!-- generated: begin — written by the command named below; edit outside these markers only -->";
export const END = "<!-- generated: end -->";

/**
 * The commit the working tree is at, and whether it has changes not committed
 * (edits to Markdown pages, which no command runs, do not count).
 */
function commitOfTree() {
  const git = (/** @type {string[]} */ ...args) => execFileSync("git", args, { cwd: ROOT, encoding: "utf8" }).trim();
  try {
    const commit = git("rev-parse", "--short=12", "HEAD");
    const changed = git("status", "--porcelain", "--untracked-files=no")
      .split("\n")
      .filter((line) => line.trim() !== "" && !line.trim().endsWith(".md"));
    return changed.length > 0 ? `${commit} with uncommitted changes` : commit;
  } catch {
    return "unknown (not a git checkout)";
  }
}

/** The tree as a run found it when it began (this module loads as the run starts): what it measured. */
const TREE_AT_START = commitOfTree();

/** This machine as a run's heading states it: cores, CPU model, memory, OS, Node. */
export function machine() {
  const cpus = os.cpus();
  const model = (cpus[0]?.model ?? "unknown CPU").replace(/\s+/g, " ").trim();
  return `${cpus.length} cores (${model}), ${Math.round(os.totalmem() / 2 ** 30)} GiB, ${os.type()} ${os.release()}, Node ${process.version}`;
}

/** The commit a run measured; if the tree moved while it ran, that too (its Workers were bundled along the way). */
function treeOfRun() {
  const now = commitOfTree();
  return now === TREE_AT_START ? now : `${TREE_AT_START} (the tree changed to ${now} during the run)`;
}

/**
 * The heading of a generated section.
 * @param {string} command the exact command that measured it
 * @param {Date} started when the run began
 * @param {Date} ended when it ended
 */
export function runHeading(command, started, ended) {
  return [
    `- **When:** ${started.toISOString().replace(/\.\d+Z$/, "Z")} to ${ended.toISOString().replace(/\.\d+Z$/, "Z")}`,
    `- **Commit:** ${treeOfRun()}`,
    `- **Machine:** ${machine()}`,
    `- **Command:** \`${command}\``,
  ].join("\n");
}

/**
 * Writes `markdown` between the markers of `file` (relative to the project's root
 * or absolute), keeping the rest of the page; a page without markers gets them
 * appended at its end, a missing page is created with `title`.
 * @param {string} file
 * @param {string} markdown
 * @param {string} title
 */
export function writeGenerated(file, markdown, title) {
  const target = path.resolve(ROOT, file);
  const page = existsSync(target) ? readFileSync(target, "utf8") : `# ${title}\n\n`;
  const section = `${BEGIN}\n\n${markdown.trim()}\n\n${END}`;
  const begin = page.indexOf(BEGIN);
  const end = page.indexOf(END);
  const next = begin >= 0 && end > begin ? page.slice(0, begin) + section + page.slice(end + END.length) : `${page.trimEnd()}\n\n${section}\n`;
  writeFileSync(target, next);
  return target;
}
