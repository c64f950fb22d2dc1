import { build } from "esbuild";

/** Bundles the real consumer: auxiliary Workers in the pool must be plain JS. */
export default async function bundleConsumer(): Promise<void> {
  await build({
    entryPoints: ["stats-consumer/index.ts"],
    outfile: ".tmp/consumer.js",
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2022",
    logLevel: "warning",
  });
}
