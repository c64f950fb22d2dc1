// @ts-check
/**
 * docs/openapi.json and docs/admin-api.md, generated from the admin routes'
 * declarations (gateway/routes/admin/openapi.ts): the routes are bundled and
 * built in Node, and the document rendered as a page. `npm run docs:api` writes
 * both; a unit test fails when they are not what the routes say.
 */
import { build } from "esbuild";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { ROOT } from "./stack.mjs";

export const OPENAPI_FILE = "docs/openapi.json";
export const ADMIN_API_PAGE = "docs/admin-api.md";

/** @typedef {Record<string, any>} Schema */

/**
 * The document and the routes it found no declaration for.
 * @returns {Promise<{ document: Schema, undocumented: string[] }>}
 */
export async function adminApiDocument() {
  const work = mkdtempSync(path.join(tmpdir(), "keypool-api-docs-"));
  try {
    const out = path.join(work, "document.mjs");
    await build({
      entryPoints: [path.join(ROOT, "test/fixtures/admin-api-document.ts")],
      outfile: out,
      bundle: true,
      format: "esm",
      platform: "node",
      logLevel: "warning",
    });
    const mod = /** @type {{ adminApiDocument: () => { document: Schema, undocumented: string[] } }} */ (await import(pathToFileURL(out).href));
    return mod.adminApiDocument();
  } finally {
    rmSync(work, { recursive: true, force: true });
  }
}

/**
 * A schema's type, in a few words.
 * @param {Schema | undefined} s
 * @returns {string}
 */
function typeOf(s) {
  if (!s || Object.keys(s).length === 0) return "any";
  if (s.const !== undefined) return JSON.stringify(s.const);
  if (s.enum) return s.enum.map((/** @type {unknown} */ v) => JSON.stringify(v)).join(" \\| ");
  const alternatives = s.anyOf ?? s.oneOf;
  if (alternatives) return alternatives.map(typeOf).join(" \\| ");
  if (Array.isArray(s.type)) return s.type.join(" \\| ");
  if (s.type === "array") return `${typeOf(s.items)}[]`;
  if (s.type === "object" && s.additionalProperties && typeof s.additionalProperties === "object" && !s.properties)
    return `map of ${typeOf(s.additionalProperties)}`;
  return s.type ?? "any";
}

/**
 * Limits worth stating: bounds, lengths, formats, defaults.
 * @param {Schema} s
 */
function limitsOf(s) {
  const parts = [];
  if (s.format) parts.push(s.format);
  // Integers come with the safe-integer range as bounds: only real limits are worth a word.
  if (s.minimum !== undefined && s.minimum !== -Number.MAX_SAFE_INTEGER) parts.push(`≥ ${s.minimum}`);
  if (s.exclusiveMinimum !== undefined) parts.push(`> ${s.exclusiveMinimum}`);
  if (s.maximum !== undefined && s.maximum !== Number.MAX_SAFE_INTEGER) parts.push(`≤ ${s.maximum}`);
  if (s.minLength !== undefined) parts.push(`length ≥ ${s.minLength}`);
  if (s.maxLength !== undefined) parts.push(`length ≤ ${s.maxLength}`);
  if (s.minItems !== undefined) parts.push(`≥ ${s.minItems} items`);
  if (s.maxItems !== undefined) parts.push(`≤ ${s.maxItems} items`);
  if (s.default !== undefined) parts.push(`default ${JSON.stringify(s.default)}`);
  return parts.join(", ");
}

/**
 * Rows (field, type, required, notes) for an object schema's properties, nested objects one level down as dotted names.
 * @param {Schema} s
 * @param {string} [prefix]
 * @returns {string[]}
 */
function fieldRows(s, prefix = "") {
  const rows = [];
  const required = new Set(s.required ?? []);
  for (const [name, field] of Object.entries(/** @type {Record<string, Schema>} */ (s.properties ?? {}))) {
    const itemObject = field.type === "array" && field.items?.type === "object" && field.items.properties ? field.items : null;
    const notes = [field.description, limitsOf(field)].filter(Boolean).join("; ");
    rows.push(`| \`${prefix}${name}\` | ${typeOf(field)} | ${required.has(name) ? "yes" : ""} | ${notes.replace(/\|/g, "\\|").replace(/\n/g, " ")} |`);
    if (field.type === "object" && field.properties && !prefix) rows.push(...fieldRows(field, `${prefix}${name}.`));
    if (itemObject && !prefix) rows.push(...fieldRows(itemObject, `${prefix}${name}[].`));
  }
  return rows;
}

/**
 * A schema as a table of its fields, or its type when it is no object.
 * @param {Schema} s
 */
function schemaBlock(s) {
  const alternatives = s.anyOf ?? s.oneOf;
  if (alternatives && alternatives.every((/** @type {Schema} */ a) => a.type === "object"))
    return alternatives.map((/** @type {Schema} */ a, /** @type {number} */ i) => `One of (${i + 1}):\n\n${schemaBlock(a)}`).join("\n\n");
  if (s.type !== "object" || !s.properties) return `\`${typeOf(s).replace(/\\\|/g, "|")}\``;
  return ["| field | type | required | notes |", "|---|---|---|---|", ...fieldRows(s)].join("\n");
}

/**
 * The errors the document describes once, as components: [status, description], by status.
 * @param {Schema} doc
 */
function commonErrors(doc) {
  /** @type {Map<string, string>} */
  const byStatus = new Map();
  for (const methods of Object.values(/** @type {Record<string, Record<string, Schema>>} */ (doc.paths))) {
    for (const operation of Object.values(methods)) {
      for (const [status, answer] of Object.entries(/** @type {Record<string, Schema>} */ (operation.responses))) {
        const name = typeof answer.$ref === "string" ? answer.$ref.split("/").pop() : undefined;
        if (name) byStatus.set(status, doc.components.responses[name].description);
      }
    }
  }
  return [...byStatus].sort(([a], [b]) => Number(a) - Number(b));
}

/**
 * The document as a Markdown page: the operations by tag, each with its
 * parameters, body and answers.
 * @param {Schema} doc
 */
export function renderAdminApiPage(doc) {
  const out = [
    "# Admin API",
    "",
    "<!-- Generated by `npm run docs:api` from the routes' declarations (gateway/routes/admin/openapi.ts); do not edit by hand. -->",
    "",
    doc.info.description,
    "",
    `Every path below is under \`${doc.servers[0].url}\`. JSON in and out; every answer is \`Cache-Control: no-store\`. The machine-readable document is [openapi.json](openapi.json), also served at \`GET ${doc.servers[0].url}/openapi.json\`.`,
    "",
    'Errors have the OpenAI shape `{ "error": { "message", "type", "param", "code" } }`. Besides those each operation lists, these may answer any operation they apply to (401: every one not marked "no session needed"; 403, 413 and 415: those with a body):',
    "",
    "| status | when |",
    "|---|---|",
    ...commonErrors(doc).map(([status, description]) => `| ${status} | ${description} |`),
    "",
  ];
  /** @type {Record<string, string[]>} */
  const byTag = {};
  for (const [p, methods] of Object.entries(/** @type {Record<string, Record<string, Schema>>} */ (doc.paths))) {
    for (const [method, operation] of Object.entries(methods)) {
      const lines = [`### ${method.toUpperCase()} ${p}`, "", `${operation.summary}.${operation.security?.length === 0 ? " No session needed." : ""}`, ""];
      if (operation.description) lines.push(operation.description, "");
      const params = /** @type {Schema[]} */ (operation.parameters ?? []);
      if (params.length > 0) {
        lines.push("| parameter | in | type | required | notes |", "|---|---|---|---|---|");
        for (const q of params)
          lines.push(
            `| \`${q.name}\` | ${q.in} | ${typeOf(q.schema)} | ${q.required ? "yes" : ""} | ${[q.description, limitsOf(q.schema)].filter(Boolean).join("; ")} |`,
          );
        lines.push("");
      }
      const body = operation.requestBody?.content?.["application/json"]?.schema;
      if (body) lines.push("Body:", "", schemaBlock(body), "");
      for (const [status, answer] of Object.entries(/** @type {Record<string, Schema>} */ (operation.responses))) {
        if (Number(status) >= 400) continue;
        const [type, content] = Object.entries(answer.content ?? {})[0] ?? [];
        lines.push(`Answer ${status}: ${answer.description}${type && type !== "application/json" ? ` (\`${type}\`)` : ""}`, "");
        if (content?.schema && type === "application/json") lines.push(schemaBlock(content.schema), "");
      }
      // The common errors (references to components) are described once, at the top of the page.
      const errors = Object.entries(/** @type {Record<string, Schema>} */ (operation.responses)).filter(([s, a]) => Number(s) >= 400 && !a.$ref);
      if (errors.length > 0) lines.push(`Errors: ${errors.map(([s, a]) => `${s} ${a.description.replace(/\.$/, "")}`).join("; ")}.`, "");
      (byTag[operation.tags[0]] ??= []).push(lines.join("\n"));
    }
  }
  for (const { name } of doc.tags) {
    if (!byTag[name]) continue;
    out.push(`## ${name[0].toUpperCase()}${name.slice(1)}`, "", ...byTag[name]);
  }
  return `${out.join("\n").trim()}\n`;
}
