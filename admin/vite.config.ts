import { svelte } from "@sveltejs/vite-plugin-svelte";
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const root = fileURLToPath(new URL(".", import.meta.url));

// The dashboard is served by the gateway Worker as static assets from admin/dist.
export default defineConfig({
  root,
  plugins: [svelte()],
  build: {
    outDir: "dist",
    emptyOutDir: true,
    // No inline scripts or styles: the gateway's CSP forbids them.
    assetsInlineLimit: 0,
  },
});
