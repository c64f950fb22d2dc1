import { build } from "esbuild";
import { createServer, type IncomingMessage } from "node:http";
import type { AddressInfo } from "node:net";
import type { TestProject } from "vitest/node";

declare module "vitest" {
  export interface ProvidedContext {
    /** The port of the tests' webhook receiver on 127.0.0.1. */
    receiverPort: number;
  }
}

/** Bundles the real consumer: auxiliary Workers in the pool must be plain JS. */
async function bundleConsumer(): Promise<void> {
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

interface Received {
  path: string;
  headers: Record<string, string>;
  body: string;
  at: number;
}

const read = (req: IncomingMessage) =>
  new Promise<string>((resolve) => {
    let body = "";
    req.setEncoding("utf8");
    req.on("data", (d: string) => (body += d));
    req.on("end", () => resolve(body));
  });

/**
 * A webhook receiver the consumer and the gateway reach over real HTTP: it
 * keeps what each path received; `/hook/fail/*` answers 500, `/hook/slow/*`
 * answers after three seconds, other `/hook/*` paths 200. `GET /received?path=`
 * tells a test what arrived at a path.
 */
function startReceiver(): Promise<{ port: number; close: () => Promise<void> }> {
  const received: Received[] = [];
  const server = createServer(async (req, res) => {
    const url = new URL(req.url ?? "/", "http://receiver");
    if (req.method === "GET" && url.pathname === "/received") {
      const path = url.searchParams.get("path") ?? "";
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify(received.filter((r) => r.path === path)));
      return;
    }
    const body = await read(req);
    received.push({ path: url.pathname, headers: Object.fromEntries(Object.entries(req.headers).map(([k, v]) => [k, String(v)])), body, at: Date.now() });
    if (url.pathname.startsWith("/hook/slow/")) await new Promise((r) => setTimeout(r, 3_000));
    res.statusCode = url.pathname.startsWith("/hook/fail/") ? 500 : 200;
    res.end(res.statusCode === 200 ? "ok" : "receiver down");
  });
  return new Promise((resolve) =>
    server.listen(0, "127.0.0.1", () => resolve({ port: (server.address() as AddressInfo).port, close: () => new Promise((r) => server.close(() => r())) })),
  );
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  await bundleConsumer();
  const receiver = await startReceiver();
  project.provide("receiverPort", receiver.port);
  return receiver.close;
}
