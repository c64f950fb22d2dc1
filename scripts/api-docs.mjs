// @ts-check
/**
 * `npm run docs:api`: writes docs/openapi.json and docs/admin-api.md from the
 * admin routes' declarations. `--check` writes nothing and exits 1 when either
 * file differs from what the routes say (the unit tests check the same).
 */
import { readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { flag } from "./lib/args.mjs";
import { ADMIN_API_PAGE, OPENAPI_FILE, adminApiDocument, renderAdminApiPage } from "./lib/api-docs.mjs";
import { ROOT } from "./lib/stack.mjs";

const { document, undocumented } = await adminApiDocument();
if (undocumented.length > 0) {
  console.error(`admin routes without a declaration (op() in gateway/routes/admin/): ${undocumented.join(", ")}`);
  process.exit(1);
}
const files = { [OPENAPI_FILE]: `${JSON.stringify(document, null, 2)}\n`, [ADMIN_API_PAGE]: renderAdminApiPage(document) };
let stale = 0;
for (const [file, text] of Object.entries(files)) {
  const target = path.join(ROOT, file);
  if (flag("check")) {
    let current = "";
    try {
      current = readFileSync(target, "utf8");
    } catch {
      // missing: stale
    }
    if (current !== text) {
      console.error(`${file} is not what the routes say: run npm run docs:api`);
      stale++;
    }
  } else {
    writeFileSync(target, text);
    console.log(`wrote ${file}`);
  }
}
process.exit(stale > 0 ? 1 : 0);
