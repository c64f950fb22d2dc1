import type { D1Migration } from "cloudflare:test";

declare global {
  namespace Cloudflare {
    interface Env {
      TEST_MIGRATIONS: D1Migration[];
    }
    interface GlobalProps {
      mainModule: typeof import("../../gateway/index");
    }
  }
  /** The consumer's bindings (its generated types are not part of this program). */
  interface ConsumerEnv {
    DB: D1Database;
    SNAPSHOT: KVNamespace;
  }
}
