import type { D1Migration } from "cloudflare:test";

declare global {
  namespace Cloudflare {
    interface Env {
      TEST_MIGRATIONS: D1Migration[];
      ARCHIVE: R2Bucket;
      DEAD_LETTERS: Queue;
    }
    interface GlobalProps {
      mainModule: typeof import("../../gateway/index");
    }
  }
  /** The consumer's bindings (its generated types are not part of this program). */
  interface ConsumerEnv {
    DB: D1Database;
    SNAPSHOT: KVNamespace;
    ARCHIVE: R2Bucket;
    EVENTS: Queue;
    DEAD_LETTERS: Queue;
  }
}
