import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import OpenAI from "openai";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { waitForModel } from "../../scripts/lib/admin-client.mjs";
import { ROOT } from "../../scripts/lib/stack.mjs";
import { startStack, type Stack } from "./fixture";

/**
 * `npm run backup` from one local stack and `npm run restore` into another with
 * other secrets: the same client key works there, and the same upstream keys
 * serve its requests.
 */

const PASSPHRASE = "a long passphrase for the e2e archive";
let from: Stack;
let into: Stack;
let work: string;

/** Runs a script against a stack, as an operator would (KEYPOOL_URL and the admin password). */
function run(script: string, args: string[], stack: Stack, passphrase = PASSPHRASE): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, "scripts", script), ...args], {
      cwd: ROOT,
      env: { ...process.env, KEYPOOL_URL: stack.url, KEYPOOL_ADMIN_PASSWORD: stack.secrets.ADMIN_PASSWORD, KEYPOOL_BACKUP_PASSPHRASE: passphrase },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("error", reject);
    child.on("exit", (code) => resolve({ code: code ?? -1, output }));
  });
}

beforeAll(async () => {
  work = mkdtempSync(path.join(tmpdir(), "keypool-backup-"));
  from = await startStack(["mock-gpt"], 3);
  into = await startStack([], 0, { provision: false });
}, 240_000);

afterAll(async () => {
  await into?.stop();
  await from?.stop();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("backup and restore between two local stacks", () => {
  it("restores the pool into a fresh stack, where the same client key and the same upstream keys serve", { timeout: 120_000 }, async () => {
    expect(into.secrets.KEY_ENCRYPTION_KEY).not.toBe(from.secrets.KEY_ENCRYPTION_KEY);
    const file = path.join(work, "keypool.json");
    const backup = await run("backup.mjs", ["--out", file], from);
    expect(backup.code, backup.output).toBe(0);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, "utf8");
    for (const key of [...from.poolKeys, from.clientKey]) expect(text).not.toContain(key);

    const restore = await run("restore.mjs", [file], into);
    expect(restore.code, restore.output).toBe(0);
    expect(restore.output).toMatch(/Restored the backup of .* 1 upstreams, 3 keys, 1 client keys/);

    // The other stack serves the restored pool with the first stack's client key…
    await waitForModel(into.url, from.clientKey, "mock-gpt", 30_000);
    const before = { ...from.mock.stats.byKey };
    const client = new OpenAI({ baseURL: `${into.url}/v1`, apiKey: from.clientKey, maxRetries: 0 });
    const answer = await client.chat.completions.create({ model: "mock-gpt", messages: [{ role: "user", content: "restored?" }] });
    expect(answer.choices[0]?.message.content).toBeTruthy();
    // …and with the first stack's upstream keys, opened under its own key-encryption key.
    const after = from.mock.stats.byKey;
    const used = Object.keys(after).filter((k) => (after[k] ?? 0) > (before[k] ?? 0));
    expect(used).toHaveLength(1);
    expect(from.poolKeys).toContain(used[0]);

    // A second restore finds the stack no longer empty.
    const again = await run("restore.mjs", [file], into);
    expect(again.code).not.toBe(0);
    expect(again.output).toContain("Restore needs an empty deployment");
    // A short passphrase is refused, and nothing is written.
    const wrong = await run("backup.mjs", ["--out", path.join(work, "short.json")], from, "short");
    expect(wrong.code).not.toBe(0);
    expect(wrong.output).toContain("at least 12 characters");
    expect(existsSync(path.join(work, "short.json"))).toBe(false);
  });
});
