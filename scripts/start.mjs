// @ts-check
/** `npm start`: the whole stack locally, nothing from outside. Ctrl-C stops everything it started. */
import path from "node:path";
import { ROOT, applyMigrations, buildDashboard, ensureDevVars, freePort, startWrangler, tickScheduler } from "./lib/stack.mjs";

const TICK_MS = 60_000;
const port = Number(process.env.PORT ?? 8787);
const persistTo = path.join(ROOT, ".wrangler/state");

const { created, vars } = ensureDevVars();
if (created) console.log("keypool: generated secrets into .dev.vars (kept for later runs)");
console.log("keypool: building the dashboard…");
await buildDashboard();
console.log("keypool: applying D1 migrations…");
await applyMigrations(persistTo, { quiet: true });
const inspectorPort = await freePort(9230);
const stack = startWrangler({ port, inspectorPort, persistTo });

let stopping = false;
async function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  clearInterval(timer);
  await stack.stop();
  process.exit(code);
}
process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));
stack.child.on("exit", (code) => {
  if (!stopping) {
    console.error(`keypool: wrangler dev exited (${code})`);
    void stop(code ?? 1);
  }
});

const timer = setInterval(() => void tickScheduler(stack.url).catch(() => {}), TICK_MS);
try {
  await stack.ready();
} catch (err) {
  console.error(String(err));
  await stop(1);
}
await tickScheduler(stack.url).catch(() => false);
console.log(`
  Keypool is running.
    Dashboard      ${stack.url}/
    OpenAI base    ${stack.url}/v1
    Admin password ${vars.ADMIN_PASSWORD}   (from .dev.vars)
  The scheduler ticks every ${TICK_MS / 1000} s. Ctrl-C stops everything.
`);
