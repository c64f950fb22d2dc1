// @ts-check
/**
 * Where `npm run backup` and `npm run restore` point, and the passphrase they use.
 * The Keypool: `--env NAME` (a deployment made by npm run deploy; KEYPOOL_ADMIN_PASSWORD
 * needed), else KEYPOOL_URL, else the local stack (its password from .dev.vars).
 */
import readline from "node:readline";
import { adminFromEnv, adminSession } from "./admin-client.mjs";
import { stringArg } from "./args.mjs";
import { apiClient, apiCredentials, resolveAccount } from "./cloudflare.mjs";
import { environmentName, gatewayUrl, savedOptions } from "./deployment.mjs";

/** An admin session with the chosen Keypool, and its URL. */
export async function adminTarget() {
  const envArg = stringArg("env");
  if (envArg === undefined) {
    const url = process.env.KEYPOOL_URL ?? `http://127.0.0.1:${process.env.PORT ?? 8787}`;
    return { url, admin: await adminFromEnv() };
  }
  const env = environmentName(envArg);
  const password = process.env.KEYPOOL_ADMIN_PASSWORD;
  if (!password) throw new Error("set KEYPOOL_ADMIN_PASSWORD, the deployment's admin password");
  const api = apiClient(await apiCredentials());
  const url = await gatewayUrl(api, await resolveAccount(api), env, savedOptions(env));
  return { url, admin: await adminSession(url, password) };
}

/**
 * The passphrase: KEYPOOL_BACKUP_PASSPHRASE, or typed (not echoed) at a terminal.
 * @param {string} prompt
 */
export async function passphrase(prompt) {
  const fromEnv = process.env.KEYPOOL_BACKUP_PASSPHRASE;
  if (fromEnv) return fromEnv;
  if (!process.stdin.isTTY) throw new Error("set KEYPOOL_BACKUP_PASSPHRASE (no terminal to ask on)");
  const rl = readline.createInterface({ input: process.stdin, output: process.stdout, terminal: true });
  process.stdout.write(prompt);
  // Typed characters are not echoed.
  /** @type {any} */ (rl)._writeToOutput = () => {};
  const answer = await new Promise((resolve) => rl.question("", resolve));
  rl.close();
  process.stdout.write("\n");
  return String(answer);
}
