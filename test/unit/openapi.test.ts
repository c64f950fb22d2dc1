import { readFileSync } from "node:fs";
import path from "node:path";
import { Validator } from "@seriousme/openapi-schema-validator";
import { beforeAll, describe, expect, it } from "vitest";
import { ADMIN_API_PAGE, OPENAPI_FILE, adminApiDocument, renderAdminApiPage } from "../../scripts/lib/api-docs.mjs";

const ROOT = path.resolve(import.meta.dirname, "../..");

describe("the admin API's OpenAPI document", () => {
  let built: Awaited<ReturnType<typeof adminApiDocument>>;
  // Bundles the admin routes with esbuild and builds the document in Node: a few seconds on a busy machine.
  beforeAll(async () => {
    built = await adminApiDocument();
  }, 60_000);

  it("describes every admin route the gateway holds", () => {
    expect(built.undocumented).toEqual([]);
    expect(Object.keys(built.document.paths).length).toBeGreaterThanOrEqual(20);
  });

  it("is a valid OpenAPI 3.1 document", async () => {
    const result = await new Validator().validate(built.document);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it("finds a broken document invalid (the check above can fail)", async () => {
    const broken = { ...built.document, paths: { "/x": { get: { responses: { "200": { content: {} } } } } } };
    expect((await new Validator().validate(broken)).valid).toBe(false);
  });

  it("is what docs/openapi.json and docs/admin-api.md hold (npm run docs:api writes them)", () => {
    expect(JSON.parse(readFileSync(path.join(ROOT, OPENAPI_FILE), "utf8"))).toEqual(built.document);
    expect(readFileSync(path.join(ROOT, ADMIN_API_PAGE), "utf8")).toBe(renderAdminApiPage(built.document));
  });
});
