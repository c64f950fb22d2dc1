/**
 * The gateway with a queue that refuses sends, for `npm run chaos` only: its own
 * entry point (never imported by gateway/index.ts), so no deployed bundle
 * contains it. The GATEWAY_FAULTS var (JSON) picks the faults:
 *
 *   queueFailRate  that share of the queue's `send` calls fails (each call drawn
 *                  on its own, retries included), so some messages are refused
 *                  three times and go to the event outbox;
 *   seed           the fault draws' seed.
 *
 * `sendBatch` (the outbox drain's call) is left alone. Whatever the faults, once
 * the cron has drained the outbox the rollups must end up exactly as without them.
 */
import { seeded } from "../tools/seeded.mjs";
import gateway from "./index";

interface Faults {
  queueFailRate: number;
  seed: number;
}

/** What this isolate has injected so far. */
const injected = { sends: 0, refused: 0 };
let draw: (() => number) | null = null;

function parseFaults(json: string | undefined): Faults {
  const raw = (json ? JSON.parse(json) : {}) as Partial<Faults>;
  return { queueFailRate: Number(raw.queueFailRate ?? 0), seed: Number(raw.seed ?? 1) };
}

/** `queue`, except that `send` fails at `rate`. */
function refusing(queue: Queue, rate: number, random: () => number): Queue {
  return new Proxy(queue, {
    get(target, prop, receiver) {
      const value: unknown = Reflect.get(target, prop, receiver);
      if (prop !== "send") return typeof value === "function" ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      return async (...args: Parameters<Queue["send"]>) => {
        injected.sends++;
        if (random() < rate) {
          injected.refused++;
          throw new Error("injected fault: the queue refused the message");
        }
        return target.send(...args);
      };
    },
  });
}

type FaultEnv = GatewayEnv & { GATEWAY_FAULTS?: string };

function withFaults(env: FaultEnv): FaultEnv {
  const faults = parseFaults(env.GATEWAY_FAULTS);
  draw ??= seeded(faults.seed);
  return { ...env, EVENTS: refusing(env.EVENTS, faults.queueFailRate, draw) };
}

export default {
  fetch: (request, env, ctx) => gateway.fetch(request, withFaults(env), ctx),
  async scheduled(controller, env, ctx) {
    await gateway.scheduled(controller, env, ctx);
    console.log(`keypool gateway faults: ${JSON.stringify(injected)}`);
  },
} satisfies ExportedHandler<FaultEnv>;
