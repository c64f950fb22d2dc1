// @ts-check
/** The command-line flags the scripts take: `--name value` and `--flag`. */

/**
 * The number after `--name`, or `fallback` when the flag is absent.
 * @param {string} name
 * @param {number} fallback
 */
export function numberArg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const value = Number(process.argv[i + 1]);
  if (!Number.isFinite(value)) throw new Error(`--${name} takes a number`);
  return value;
}

/**
 * The text after `--name`, or undefined when the flag is absent.
 * @param {string} name
 */
export function stringArg(name) {
  const i = process.argv.indexOf(`--${name}`);
  if (i < 0) return undefined;
  const value = process.argv[i + 1];
  if (value === undefined || value.startsWith("--")) throw new Error(`--${name} takes a value`);
  return value;
}

/**
 * Whether `--name` was given.
 * @param {string} name
 */
export function flag(name) {
  return process.argv.includes(`--${name}`);
}
