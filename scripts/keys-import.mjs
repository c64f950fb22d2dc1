// @ts-check
/**
 * `npm run keys:import -- FILE [--upstream ID | --base-url URL [--kind KIND] [--name NAME]]`
 * Imports the seed pool's KV `tokens` value (what `wrangler kv key get tokens` prints:
 * a JSON array of { key, enabled, balance, … }) into an upstream of the running
 * stack, keeping each key's enabled state and balance. With --base-url it creates
 * the upstream first. KEYPOOL_URL / PORT and KEYPOOL_ADMIN_PASSWORD as for replay.
 */
import { readFileSync } from "node:fs";
import { adminFromEnv } from "./lib/admin-client.mjs";

const [file, ...rest] = process.argv.slice(2);
/** @param {string} name */
const option = (name) => {
  const i = rest.indexOf(`--${name}`);
  return i >= 0 ? rest[i + 1] : undefined;
};
if (!file || (!option("upstream") && !option("base-url"))) {
  console.error("usage: npm run keys:import -- tokens.json (--upstream ID | --base-url URL [--kind siliconflow] [--name NAME])");
  process.exit(2);
}

const raw = JSON.parse(readFileSync(file, "utf8"));
const tokens = Array.isArray(raw) ? raw : raw.tokens;
if (!Array.isArray(tokens)) {
  console.error(`${file} holds neither a JSON array nor { "tokens": [...] }`);
  process.exit(2);
}

const admin = await adminFromEnv();

let upstreamId = option("upstream");
if (!upstreamId) {
  const created = /** @type {{ id: string }} */ (
    await admin("POST", "/upstreams", { name: option("name") ?? "Imported from the seed pool", baseUrl: option("base-url"), kind: option("kind") ?? "custom" })
  );
  upstreamId = created.id;
  console.log(`created upstream ${upstreamId}`);
}
let totals = { added: 0, duplicates: 0, disabled: 0, balances: 0 };
for (let i = 0; i < tokens.length; i += 1_000) {
  const r = /** @type {typeof totals} */ (await admin("POST", "/keys/import-seed", { upstreamId, tokens: tokens.slice(i, i + 1_000) }));
  totals = {
    added: totals.added + r.added,
    duplicates: totals.duplicates + r.duplicates,
    disabled: totals.disabled + r.disabled,
    balances: totals.balances + r.balances,
  };
}
console.log(`imported ${totals.added} key(s) (${totals.disabled} disabled, ${totals.balances} with a balance); ${totals.duplicates} already in the pool`);
