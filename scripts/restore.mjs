// @ts-check
/**
 * `npm run restore -- FILE [--env NAME]`: loads an archive written by
 * `npm run backup` into an empty Keypool (a fresh deployment, or the local
 * stack), with its passphrase (KEYPOOL_BACKUP_PASSPHRASE, or asked for).
 */
import { readFileSync } from "node:fs";
import { adminTarget, passphrase } from "./lib/backup-target.mjs";

const file = process.argv[2];
if (!file || file.startsWith("--")) {
  console.error("usage: npm run restore -- keypool-backup-….json [--env NAME]");
  process.exit(2);
}
try {
  const archive = JSON.parse(readFileSync(file, "utf8"));
  const { url, admin } = await adminTarget();
  const secret = await passphrase("The archive's passphrase: ");
  const result = /** @type {{ restored: Record<string, number>, from: { createdAt: number } }} */ (
    await admin("POST", "/restore", { passphrase: secret, archive })
  );
  const counts = Object.entries(result.restored)
    .filter(([, n]) => n > 0)
    .map(([t, n]) => `${n} ${t.replace(/_/g, " ")}`)
    .join(", ");
  console.log(`Restored the backup of ${new Date(result.from.createdAt).toISOString()} into ${url}: ${counts}.`);
  console.log("The gateway serves the restored pool once the consumer has published it (a few seconds).");
} catch (e) {
  console.error(`✘ ${e instanceof Error ? e.message : e}`);
  process.exit(1);
}
