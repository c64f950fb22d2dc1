// @ts-check
/**
 * `npm run backup -- [--out FILE] [--env NAME]`: writes an archive of the
 * configuration — upstreams, keys, client keys' hashes and limits, prices,
 * settings, alert destinations — sealed under a passphrase
 * (KEYPOOL_BACKUP_PASSPHRASE, or asked for). `npm run restore` reads it.
 */
import { writeFileSync } from "node:fs";
import { stringArg } from "./lib/args.mjs";
import { adminTarget, passphrase } from "./lib/backup-target.mjs";

try {
  const { url, admin } = await adminTarget();
  const secret = await passphrase("Passphrase for the archive (at least 12 characters; keep it apart from the archive): ");
  const archive = /** @type {{ createdAt: number }} */ (await admin("POST", "/backup", { passphrase: secret }));
  const file = stringArg("out") ?? `keypool-backup-${new Date(archive.createdAt).toISOString().slice(0, 19).replace(/[:T]/g, "-")}.json`;
  writeFileSync(file, `${JSON.stringify(archive)}\n`, { mode: 0o600 });
  console.log(`Backed up ${url} to ${file}. Restore with: npm run restore -- ${file}`);
} catch (e) {
  console.error(`✘ ${e instanceof Error ? e.message : e}`);
  process.exit(1);
}
