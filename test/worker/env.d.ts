import type { D1Migration } from "cloudflare:test";

declare global {
  namespace Cloudflare {
    interface Env {
      TEST_MIGRATIONS: D1Migration[];
      /** The fold-shards test's databases (vitest.config.ts). */
      FOLD_WHOLE: D1Database;
      FOLD_0: D1Database;
      FOLD_1: D1Database;
      FOLD_2: D1Database;
      FOLD_ARCHIVE: R2Bucket;
      /** The fold-layout test's: a pool's databases, the one beside them, its archive and its KV. */
      SPLIT_1: D1Database;
      SPLIT_2: D1Database;
      SPLIT_3: D1Database;
      SPLIT_REF: D1Database;
      SPLIT_ARCHIVE: R2Bucket;
      SPLIT_SNAPSHOT: KVNamespace;
      /** The least-retention test's: two pools alike, one of them pruned. */
      RETAIN_KEPT: D1Database;
      RETAIN_PRUNED: D1Database;
    }
  }
}
