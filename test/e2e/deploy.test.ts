import { spawn } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ROOT, buildDashboard } from "../../scripts/lib/stack.mjs";
import { secretDigest, startStandin } from "../../tools/cf-api-standin/server.mjs";

/**
 * `npm run deploy` with the real wrangler against a local stand-in for the
 * Cloudflare API: a first deploy, a re-deploy that changes nothing, a run that
 * fails halfway and the run that finishes it, an upgrade whose migration goes
 * first, and no secret printed or logged more than the once it must be.
 */

type Standin = Awaited<ReturnType<typeof startStandin>>;
type Call = Standin["calls"][number];

let standin: Standin;
let work: string;
/** The production deploy's admin password, as its first run printed it. */
let adminPassword = "";
/** Everything the deploys printed, for the secrets check at the end. */
const outputs: string[] = [];

/** Runs `node scripts/deploy.mjs --no-build …` against the stand-in; its exit code and output. */
function deploy(args: string[]): Promise<{ code: number; output: string }> {
  return script("deploy.mjs", ["--no-build", ...args]);
}

/** Runs one of the deploy scripts against the stand-in. */
function script(name: string, args: string[], extraEnv: Record<string, string> = {}): Promise<{ code: number; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [path.join(ROOT, "scripts", name), ...args], {
      cwd: ROOT,
      env: {
        ...process.env,
        ...extraEnv,
        KEYPOOL_ROTATE_TIMEOUT_MS: "20000",
        CLOUDFLARE_API_BASE_URL: standin.apiBaseUrl,
        CLOUDFLARE_API_TOKEN: "standin-token",
        CLOUDFLARE_ACCOUNT_ID: "",
        KEYPOOL_DEPLOY_DIR: path.join(work, "deploy"),
        KEYPOOL_HEALTH_TIMEOUT_MS: "10000",
        XDG_CONFIG_HOME: path.join(work, "wrangler-config"),
        CLOUDFLARE_CF_FETCH_ENABLED: "false",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("error", reject);
    child.on("exit", (code) => {
      outputs.push(output);
      resolve({ code: code ?? -1, output });
    });
  });
}

/** The stand-in's health route for a Worker: what the deploy checks in place of workers.dev. */
const healthUrl = (worker: string) => `${standin.origin}/__workers/${worker}`;

/** Calls that change something (a SELECT through D1's query endpoint changes nothing). */
const mutating = (calls: Call[]) => calls.filter((c) => c.method !== "GET" && !(c.path.endsWith("/query") && !c.body));
const uploads = (calls: Call[], worker: string) =>
  calls.filter(
    (c) =>
      (c.method === "PUT" && c.path.endsWith(`/workers/scripts/${worker}`)) || (c.method === "POST" && c.path.endsWith(`/workers/scripts/${worker}/versions`)),
  );

beforeAll(async () => {
  if (!existsSync(path.join(ROOT, "admin/dist/index.html"))) await buildDashboard({ quiet: true });
  work = mkdtempSync(path.join(tmpdir(), "keypool-deploy-"));
  standin = await startStandin();
});

afterAll(async () => {
  await standin?.close();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe("npm run deploy against a stand-in Cloudflare API", () => {
  it("plans without changing anything, then deploys everything in order, then finds nothing to change", { timeout: 180_000 }, async () => {
    const plan = await deploy(["--dry-run"]);
    expect(plan.code, plan.output).toBe(0);
    expect(plan.output).toContain("KV namespace keypool-snapshot: would be created");
    expect(plan.output).toContain(`would apply ${readdirSync(path.join(ROOT, "schema/migrations")).filter((f) => f.endsWith(".sql")).length}`);
    expect(plan.output).toContain("keypool-gateway: would deploy (not deployed yet)");
    expect(mutating(standin.calls)).toEqual([]);

    const first = await deploy(["--url", healthUrl("keypool-gateway")]);
    expect(first.code, first.output).toBe(0);
    const { kv, d1, r2, queues, scripts } = standin.state;
    expect(kv.map((n) => n.title)).toEqual(["keypool-snapshot"]);
    expect(d1.map((d) => d.name)).toEqual(["keypool"]);
    expect(d1[0]!.migrations).toEqual(
      readdirSync(path.join(ROOT, "schema/migrations"))
        .filter((f) => f.endsWith(".sql"))
        .sort(),
    );
    expect(r2.map((b) => b.name)).toEqual(["keypool-archive"]);
    // Four event queues, each consumed by the consumer with the one dead-letter queue behind them.
    const eventQueues = ["keypool-events", "keypool-events-2", "keypool-events-3", "keypool-events-4"];
    expect(queues.map((q) => q.queue_name).sort()).toEqual([...eventQueues, "keypool-events-dlq", "keypool-probes"].sort());
    for (const name of eventQueues)
      expect(queues.find((q) => q.queue_name === name)!.consumers).toEqual([
        expect.objectContaining({ script: "keypool-stats-consumer", dead_letter_queue: "keypool-events-dlq" }),
      ]);
    expect(queues.find((q) => q.queue_name === "keypool-events-dlq")!.consumers).toHaveLength(1);
    // The gateway takes the probe jobs its own cron hands on.
    expect(queues.find((q) => q.queue_name === "keypool-probes")!.consumers).toEqual([expect.objectContaining({ script: "keypool-gateway" })]);

    const gateway = scripts.get("keypool-gateway")!;
    const consumer = scripts.get("keypool-stats-consumer")!;
    expect([...gateway.secrets.keys()].sort()).toEqual(["ADMIN_PASSWORD", "ALERT_ENCRYPTION_KEY", "JWT_SECRET", "KEY_ENCRYPTION_KEY"]);
    expect([...consumer.secrets.keys()]).toEqual(["ALERT_ENCRYPTION_KEY"]);
    // The two Workers share one alert-encryption key.
    expect(consumer.secrets.get("ALERT_ENCRYPTION_KEY")).toBe(gateway.secrets.get("ALERT_ENCRYPTION_KEY"));
    // Bound to the resources just made, with the dashboard's assets and the scheduler's cron.
    const bound = gateway.versions.at(-1)!.bindings;
    expect(bound).toEqual(
      expect.arrayContaining([
        expect.objectContaining({ type: "kv_namespace", name: "SNAPSHOT", namespace_id: kv[0]!.id }),
        expect.objectContaining({ type: "d1", name: "DB", id: d1[0]!.uuid }),
        expect.objectContaining({ type: "r2_bucket", name: "ARCHIVE", bucket_name: "keypool-archive" }),
        expect.objectContaining({ type: "queue", name: "EVENTS", queue_name: "keypool-events" }),
        expect.objectContaining({ type: "queue", name: "EVENTS_4", queue_name: "keypool-events-4" }),
        expect.objectContaining({ type: "queue", name: "PROBES", queue_name: "keypool-probes" }),
      ]),
    );
    expect(gateway.assets).toContain("/index.html");
    expect(gateway.schedules).toEqual(["* * * * *"]);

    // Migrations before the consumer, the consumer before the gateway.
    const order = standin.calls.map((c, i) => ({ c, i }));
    const lastMigration = Math.max(...order.filter(({ c }) => (c.body as { migration?: string } | undefined)?.migration).map(({ i }) => i));
    const consumerUpload = standin.calls.indexOf(uploads(standin.calls, "keypool-stats-consumer")[0]!);
    const gatewayUpload = standin.calls.indexOf(uploads(standin.calls, "keypool-gateway")[0]!);
    expect(lastMigration).toBeLessThan(consumerUpload);
    expect(consumerUpload).toBeLessThan(gatewayUpload);

    adminPassword = /Admin password \(shown this once[^)]*\): (\S{20})/.exec(first.output)?.[1] ?? "";
    expect(adminPassword).toHaveLength(20);
    expect(first.output).toContain(`Keypool is deployed. Dashboard: ${healthUrl("keypool-gateway")}/`);
    expect(existsSync(path.join(work, "deploy/production/pending-secrets.json"))).toBe(false);
    // No account-specific id lands in a committed file.
    for (const file of ["wrangler.gateway.toml", "wrangler.consumer.toml"]) {
      const text = readFileSync(path.join(ROOT, file), "utf8");
      expect(text).not.toContain(kv[0]!.id);
      expect(text).not.toContain(d1[0]!.uuid);
    }

    const before = standin.calls.length;
    const again = await deploy([]);
    expect(again.code, again.output).toBe(0);
    expect(again.output).toContain("Nothing to change: Keypool is up to date.");
    expect(again.output).not.toContain("Admin password");
    expect(mutating(standin.calls.slice(before))).toEqual([]);
  });

  it("finishes a deploy that failed halfway, creating nothing twice, with the secrets of the first attempt", { timeout: 180_000 }, async () => {
    // A second copy (staging) with resources of its own; its gateway upload is refused once.
    standin.failNext("PUT", /\/workers\/scripts\/keypool-staging-gateway$/, 1, 400);
    const from = standin.calls.length;
    const failed = await deploy(["--env", "staging", "--url", healthUrl("keypool-staging-gateway")]);
    expect(failed.code).not.toBe(0);
    expect(failed.output).toContain("deploying keypool-staging-gateway failed; run npm run deploy again to resume");
    expect(failed.output).not.toContain("Admin password");
    const pendingFile = path.join(work, "deploy/staging/pending-secrets.json");
    expect(statSync(pendingFile).mode & 0o777).toBe(0o600);
    const stash = JSON.parse(readFileSync(pendingFile, "utf8")) as { values: Record<string, string> };
    expect(Object.keys(stash.values).sort()).toEqual(["ADMIN_PASSWORD", "ALERT_ENCRYPTION_KEY", "JWT_SECRET", "KEY_ENCRYPTION_KEY"]);
    const consumer = standin.state.scripts.get("keypool-staging-stats-consumer")!;
    expect(consumer.secrets.get("ALERT_ENCRYPTION_KEY")).toBe(secretDigest(stash.values.ALERT_ENCRYPTION_KEY!));

    const resumed = await deploy(["--env", "staging"]);
    expect(resumed.code, resumed.output).toBe(0);
    expect(resumed.output).toContain("keypool-staging-stats-consumer: up to date");
    expect(resumed.output).toContain("keypool-staging-gateway: deployed");
    const gateway = standin.state.scripts.get("keypool-staging-gateway")!;
    for (const [name, value] of Object.entries(stash.values)) expect(gateway.secrets.get(name), name).toBe(secretDigest(value));
    // Every resource of staging created once, none of production's touched.
    const creations = mutating(standin.calls.slice(from)).filter((c) => /\/(storage\/kv\/namespaces|d1\/database|r2\/buckets|queues)$/.test(c.path));
    expect(creations.map((c) => Object.values(c.body as object)[0]).sort()).toEqual([
      "keypool-staging",
      "keypool-staging-archive",
      "keypool-staging-events",
      "keypool-staging-events-2",
      "keypool-staging-events-3",
      "keypool-staging-events-4",
      "keypool-staging-events-dlq",
      "keypool-staging-probes",
      "keypool-staging-snapshot",
    ]);
    // Staging's consumer takes staging's event queues, dead-lettering to staging's queue.
    expect(standin.state.queues.find((q) => q.queue_name === "keypool-staging-events-3")!.consumers).toEqual([
      expect.objectContaining({ script: "keypool-staging-stats-consumer", dead_letter_queue: "keypool-staging-events-dlq" }),
    ]);
    expect(uploads(standin.calls.slice(from), "keypool-stats-consumer")).toEqual([]);
    expect(existsSync(pendingFile)).toBe(false);

    // The admin password: printed by the run that completed, once, and by no other.
    const printed = outputs.join("\n").split(stash.values.ADMIN_PASSWORD!).length - 1;
    expect(printed).toBe(1);
    expect(resumed.output).toContain(stash.values.ADMIN_PASSWORD);
    // The other secrets: never printed, never in a call the stand-in recorded, never in wrangler's logs.
    const logs = readdirSync(path.join(work, "wrangler-config"), { recursive: true, withFileTypes: true })
      .filter((e) => e.isFile())
      .map((e) => readFileSync(path.join(e.parentPath, e.name), "utf8"))
      .join("\n");
    for (const name of ["JWT_SECRET", "KEY_ENCRYPTION_KEY", "ALERT_ENCRYPTION_KEY"]) {
      const value = stash.values[name]!;
      expect(outputs.join("\n"), name).not.toContain(value);
      expect(JSON.stringify(standin.calls), name).not.toContain(value);
      expect(logs, name).not.toContain(value);
    }
    expect(logs).not.toContain(stash.values.ADMIN_PASSWORD);

    // A deploy that uploads the gateway but stops while setting its triggers is finished by the next run,
    // although the version it left has the right tag.
    standin.failNext("PUT", /\/workers\/scripts\/keypool-staging-gateway\/schedules$/, 1, 400);
    const routed = await deploy(["--env", "staging", "--route", "example.com/keypool-staging/*", "--zone", "example.com"]);
    expect(routed.code).not.toBe(0);
    expect(routed.output).not.toMatch(/\x1b\[/);
    const staging = standin.state.scripts.get("keypool-staging-gateway")!;
    expect(staging.routes).toEqual([expect.objectContaining({ pattern: "example.com/keypool-staging/*" })]);
    staging.schedules = [];
    const finished = await deploy(["--env", "staging"]);
    expect(finished.code, finished.output).toBe(0);
    expect(finished.output).toContain("keypool-staging-gateway: deployed (its last deploy did not finish)");
    expect(staging.schedules).toEqual(["* * * * *"]);
    const settled = await deploy(["--env", "staging"]);
    expect(settled.output).toContain("Nothing to change");
  });

  it("upgrades a database one migration behind before deploying the Worker that needs it, and sets a custom domain", { timeout: 180_000 }, async () => {
    // Production as an older version left it: the newest migration not applied yet.
    const db = standin.state.d1.find((d) => d.name === "keypool")!;
    const newest = db.migrations.pop()!;
    const from = standin.calls.length;
    const upgrade = await deploy(["--domain", "keypool.example.com", "--url", healthUrl("keypool-gateway")]);
    expect(upgrade.code, upgrade.output).toBe(0);
    expect(upgrade.output).toContain(`applied 1: ${newest}`);
    const calls = standin.calls.slice(from);
    const migration = calls.findIndex((c) => (c.body as { migration?: string } | undefined)?.migration === newest);
    const gatewayUpload = calls.indexOf(uploads(calls, "keypool-gateway")[0]!);
    expect(migration).toBeGreaterThanOrEqual(0);
    expect(migration).toBeLessThan(gatewayUpload);
    expect(db.migrations.at(-1)).toBe(newest);
    expect(standin.state.scripts.get("keypool-gateway")!.domains).toEqual([expect.objectContaining({ hostname: "keypool.example.com" })]);
    // The domain is remembered: the next run changes nothing.
    const again = await deploy([]);
    expect(again.code, again.output).toBe(0);
    expect(again.output).toContain("Nothing to change");
  });

  it(
    "folds into several databases: each provisioned, migrated and bound, and a change of the list refused until a refold is asked for",
    { timeout: 180_000 },
    async () => {
      // Production has folded events into its one database.
      const first = standin.state.d1.find((d) => d.name === "keypool")!;
      first.layout = "1/1";
      const from = standin.calls.length;
      const refused = await deploy(["--fold-databases", "3", "--url", healthUrl("keypool-gateway")]);
      expect(refused.code).not.toBe(0);
      expect(refused.output).toContain("the fold databases change (the first database holds 1/1, it would be 1/3)");
      expect(refused.output).toContain("--refold");
      // Refused before anything was created or deployed.
      expect(mutating(standin.calls.slice(from))).toEqual([]);
      const invalid = await deploy(["--fold-databases", "0"]);
      expect(invalid.output).toContain("--fold-databases takes a whole number from 1 to 64");

      const moved = await deploy(["--fold-databases", "3", "--refold", "--url", healthUrl("keypool-gateway")]);
      expect(moved.code, moved.output).toBe(0);
      const migrations = readdirSync(path.join(ROOT, "schema/migrations"))
        .filter((f) => f.endsWith(".sql"))
        .sort();
      const folds = ["keypool", "keypool-fold-2", "keypool-fold-3"].map((name) => standin.state.d1.find((d) => d.name === name)!);
      for (const db of folds) expect(db.migrations, db.name).toEqual(migrations);
      // Both Workers bind the three in order.
      for (const worker of ["keypool-gateway", "keypool-stats-consumer"]) {
        const bound = standin.state.scripts
          .get(worker)!
          .versions.at(-1)!
          .bindings.filter((b) => b.type === "d1");
        expect(
          bound.map((b) => [b.name, b.id]),
          worker,
        ).toEqual(folds.map((db, i) => [i === 0 ? "DB" : `DB_${i + 1}`, db.uuid]));
      }
      // The refold asked for on the first event queue, after both Workers were deployed; the health check passed once it ran.
      const asked = standin.calls.slice(from).findIndex((c) => (c.body as { message?: { action?: string } })?.message?.action === "replay.refold");
      expect(asked).toBeGreaterThan(standin.calls.slice(from).indexOf(uploads(standin.calls.slice(from), "keypool-gateway")[0]!));
      expect(standin.state.queues.find((q) => q.queue_name === "keypool-events")!.messages).toEqual([
        expect.objectContaining({ type: "admin", action: "replay.refold", actor: "deploy", detail: { jobId: expect.any(String) } }),
      ]);
      expect(folds.map((db) => db.layout)).toEqual(["1/3", "2/3", "3/3"]);
      expect(moved.output).toContain("Refold asked for on keypool-events");

      // Remembered: the next run changes nothing; going back to one database is refused the same way.
      const again = await deploy([]);
      expect(again.code, again.output).toBe(0);
      expect(again.output).toContain("Nothing to change");
      const back = await deploy(["--fold-databases", "1"]);
      expect(back.code).not.toBe(0);
      expect(back.output).toContain("the first database holds 1/3, it would be 1/1");
    },
  );

  it("rotates the key-encryption key: next key set, keys re-sealed under it, then promoted, and the next key deleted", { timeout: 180_000 }, async () => {
    const gateway = standin.state.scripts.get("keypool-gateway")!;
    const before = gateway.secrets.get("KEY_ENCRYPTION_KEY");
    const from = standin.calls.length;
    const refused = await script("rotate.mjs", ["key-encryption-key"]);
    expect(refused.code).not.toBe(0);
    expect(refused.output).toContain("set KEYPOOL_ADMIN_PASSWORD");
    // The refused run got as far as setting the next key; the next run resumes from there with the same value.
    const stash = JSON.parse(readFileSync(path.join(work, "deploy/production/rotation-key-encryption-key.json"), "utf8")) as { value: string; phase: string };
    expect(stash.phase).toBe("reseal");
    expect(gateway.secrets.get("KEY_ENCRYPTION_KEY_NEXT")).toBe(secretDigest(stash.value));

    const rotated = await script("rotate.mjs", ["key-encryption-key"], { KEYPOOL_ADMIN_PASSWORD: adminPassword });
    expect(rotated.code, rotated.output).toBe(0);
    expect(rotated.output).toContain("KEY_ENCRYPTION_KEY is rotated.");
    expect(gateway.secrets.get("KEY_ENCRYPTION_KEY")).toBe(secretDigest(stash.value));
    expect(gateway.secrets.get("KEY_ENCRYPTION_KEY")).not.toBe(before);
    expect(gateway.secrets.has("KEY_ENCRYPTION_KEY_NEXT")).toBe(false);
    // In order: the next key set, the keys re-sealed under it, the key promoted, the next key deleted.
    const calls = standin.calls.slice(from);
    const at = (test: (c: Call) => boolean) => calls.findIndex(test);
    const setNext = at((c) => (c.body as { secretsSet?: string[] } | undefined)?.secretsSet?.includes("KEY_ENCRYPTION_KEY_NEXT") === true);
    const reseal = at((c) => c.path.endsWith("/keys/reseal"));
    const promote = at((c) => (c.body as { secretsSet?: string[] } | undefined)?.secretsSet?.includes("KEY_ENCRYPTION_KEY") === true);
    const cleanup = at((c) => (c.body as { secretDeleted?: string } | undefined)?.secretDeleted === "KEY_ENCRYPTION_KEY_NEXT");
    expect(setNext).toBeGreaterThanOrEqual(0);
    expect([setNext, reseal, promote, cleanup]).toEqual([setNext, reseal, promote, cleanup].sort((a, b) => a - b));
    expect((calls[reseal]!.body as { resealedUnder: string }).resealedUnder).toBe(secretDigest(stash.value));
    expect(existsSync(path.join(work, "deploy/production/rotation-key-encryption-key.json"))).toBe(false);
    expect(outputs.join("\n")).not.toContain(stash.value);
  });

  it("rotates the JWT secret in two steps, keeping older sessions until they could have expired", { timeout: 180_000 }, async () => {
    const gateway = standin.state.scripts.get("keypool-gateway")!;
    const started = await script("rotate.mjs", ["jwt-secret"]);
    expect(started.code, started.output).toBe(0);
    expect(started.output).toMatch(/stay valid until .*run npm run rotate -- jwt-secret again after that/s);
    const stash = JSON.parse(readFileSync(path.join(work, "deploy/production/rotation-jwt-secret.json"), "utf8")) as { value: string };
    expect(gateway.secrets.get("JWT_SECRET_NEXT")).toBe(secretDigest(stash.value));
    expect(gateway.secrets.get("JWT_SECRET")).not.toBe(secretDigest(stash.value));

    const finished = await script("rotate.mjs", ["jwt-secret", "--now"]);
    expect(finished.code, finished.output).toBe(0);
    expect(gateway.secrets.get("JWT_SECRET")).toBe(secretDigest(stash.value));
    expect(gateway.secrets.has("JWT_SECRET_NEXT")).toBe(false);
    expect(outputs.join("\n")).not.toContain(stash.value);
  });

  it("stops at a health check that fails, and says why", { timeout: 120_000 }, async () => {
    const res = await deploy(["--url", `${standin.origin}/__workers/no-such-worker`]);
    expect(res.code).not.toBe(0);
    expect(res.output).toMatch(/did not pass its health check within 10 s \(HTTP 404/);
  });
});
