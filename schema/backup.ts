import { z } from "zod";

/**
 * A backup of a deployment's configuration: what `POST /admin/api/backup` writes
 * and `POST /admin/api/restore` reads. The configuration travels sealed (AES-GCM
 * under a key derived from a passphrase with PBKDF2), so the archive depends on
 * no deployment's secrets: upstream keys and alert destinations are inside in
 * clear, client keys as their hashes. Usage and health are not in it — they are
 * projections of the event log.
 */

/** The tables a backup carries, in the order a restore writes them. */
export const BACKUP_TABLES = ["settings", "upstreams", "keys", "client_keys", "prices", "alert_destinations", "metrics_access"] as const;
export type BackupTable = (typeof BACKUP_TABLES)[number];

/** Passphrases shorter than this are refused: the archive holds every upstream key. */
export const MIN_PASSPHRASE_LENGTH = 12;

const passphraseSchema = z
  .string()
  .min(MIN_PASSPHRASE_LENGTH, `the passphrase must be at least ${MIN_PASSPHRASE_LENGTH} characters`)
  .max(1024)
  .describe("Seals the archive. Keep it apart from the archive: without it nothing in the archive can be read.");

export const backupBodySchema = z.object({ passphrase: passphraseSchema });

/** The archive as it is stored: readable metadata, the configuration sealed. */
export const backupArchiveSchema = z.object({
  format: z.literal("keypool-backup"),
  version: z.literal(1),
  createdAt: z.number().int().describe("When it was written, ms since the epoch."),
  schema: z.string().max(200).describe("The newest D1 migration of the deployment it came from."),
  kdf: z.object({ name: z.literal("PBKDF2"), hash: z.literal("SHA-256"), iterations: z.number().int().min(10_000).max(100_000), salt: z.string().max(100) }),
  cipher: z.literal("AES-GCM"),
  data: z.string().describe("The configuration, sealed: `v1.<iv>.<ciphertext>`, base64url."),
});
export type BackupArchive = z.infer<typeof backupArchiveSchema>;

export const restoreBodySchema = z.object({ passphrase: passphraseSchema, archive: backupArchiveSchema });

/** Inside the sealed part: each table's rows, secrets in clear (`secret` of a key; `url` and `secret` of a destination). */
export const backupPayloadSchema = z.object({
  tables: z.record(z.string(), z.array(z.record(z.string(), z.union([z.string(), z.number(), z.null()])))),
});
export type BackupPayload = z.infer<typeof backupPayloadSchema>;

/** What was restored, table by table. */
export const restoreResponseSchema = z.object({
  restored: z.record(z.string(), z.number().int()),
  from: z.object({ createdAt: z.number().int(), schema: z.string() }),
});
