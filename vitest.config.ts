import { cloudflareTest, readD1Migrations } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";
import { queueConsumers, queueProducers } from "./scripts/lib/wrangler-config.mjs";
import { TEST_SECRETS } from "./test/worker/secrets.ts";

const KV_ID = "00000000000000000000000000000001";
const D1_ID = "00000000-0000-4000-8000-000000000001";
const ARCHIVE_BUCKET = "keypool-archive";
const DLQ = "keypool-events-dlq";

/**
 * Three projects in one run: pure logic under Node, the Workers inside workerd
 * (the gateway as main, the real consumer as an auxiliary Worker fed by the real
 * queue), and end-to-end tests that drive `wrangler dev` with the openai SDK.
 */
export default defineConfig({
  test: {
    projects: [
      {
        test: { name: "unit", include: ["test/unit/**/*.test.ts"], environment: "node", sequence: { groupOrder: 0 }, testTimeout: 30_000 },
      },
      {
        plugins: [
          cloudflareTest(async () => ({
            // The gateway's bindings and assets from its config; its handlers through the tests' entry.
            main: "./test/fixtures/workers/gateway.ts",
            wrangler: { configPath: "./wrangler.gateway.toml" },
            miniflare: {
              bindings: { ...TEST_SECRETS, TEST_MIGRATIONS: await readD1Migrations("./schema/migrations") },
              // The consumer's own bindings, so its unit tests can run here too.
              // The fold-shards and fold-layout tests' archives of their own (a replay reads every batch of a bucket).
              r2Buckets: { ARCHIVE: ARCHIVE_BUCKET, FOLD_ARCHIVE: "fold-archive", SPLIT_ARCHIVE: "split-archive" },
              // The fold-layout test's consumer publishes into a namespace of its own.
              kvNamespaces: { SPLIT_SNAPSHOT: "split-snapshot" },
              queueProducers: { DEAD_LETTERS: { queueName: DLQ } },
              // The gateway's database as its config has it; four of the fold-shards test's own: one folding a
              // batch whole, three folding it by key; and the fold-layout test's pool of three and its one beside.
              d1Databases: {
                DB: D1_ID,
                FOLD_WHOLE: "fold-whole",
                FOLD_0: "fold-0",
                FOLD_1: "fold-1",
                FOLD_2: "fold-2",
                SPLIT_1: "split-1",
                SPLIT_2: "split-2",
                SPLIT_3: "split-3",
                SPLIT_REF: "split-ref",
                // The least-retention test's two pools alike, one pruned.
                RETAIN_KEPT: "retain-kept",
                RETAIN_PRUNED: "retain-pruned",
              },
              workers: [
                {
                  name: "keypool-stats-consumer",
                  modules: true,
                  scriptPath: "./.tmp/consumer.js",
                  compatibilityDate: "2026-04-20",
                  bindings: { ALERT_ENCRYPTION_KEY: TEST_SECRETS.ALERT_ENCRYPTION_KEY },
                  kvNamespaces: { SNAPSHOT: KV_ID },
                  d1Databases: { DB: D1_ID },
                  r2Buckets: { ARCHIVE: ARCHIVE_BUCKET },
                  // Its queues as wrangler.consumer.toml has them (every event queue the gateway sends to), batched for 50 ms.
                  queueProducers: queueProducers("wrangler.consumer.toml"),
                  queueConsumers: queueConsumers({ maxBatchTimeout: 0.05 }),
                },
              ],
            },
          })),
        ],
        test: {
          name: "worker",
          include: ["test/worker/**/*.test.ts"],
          // Most take well under a second; the budget is for a busy 2-core machine (the queue, D1 and
          // the consumer share it), and the long ones set their own.
          testTimeout: 30_000,
          sequence: { groupOrder: 0 },
          globalSetup: ["./test/worker/global-setup.ts"],
          setupFiles: ["./test/worker/apply-migrations.ts"],
        },
      },
      {
        test: {
          name: "browser",
          include: ["test/browser/**/*.test.ts"],
          // After the end-to-end group: each runs its own wrangler dev, and two cores are shared.
          sequence: { groupOrder: 2 },
          environment: "node",
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
      {
        test: {
          name: "e2e",
          include: ["test/e2e/**/*.test.ts"],
          // After the unit and Worker tests, so the local stacks do not fight them for CPU.
          sequence: { groupOrder: 1 },
          environment: "node",
          testTimeout: 60_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
