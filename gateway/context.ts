import type { ProbeEvent } from "../schema";
import type { AdminSession } from "./logic/admin-session";
import type { ClientLimiter } from "./logic/client-limits";
import type { LocalObservations } from "./logic/local-observations";
import type { EventBatcher } from "./logic/event-batcher";
import type { PoolCache } from "./storage/snapshot-cache";

/** Hono's type parameters for the gateway: bindings plus what middleware sets. */
export interface GatewayHono {
  Bindings: GatewayEnv;
  Variables: {
    /** The admin subject and session, set by the admin auth middleware. */
    admin: string;
    session: AdminSession;
  };
}

/** Isolate-wide state shared by all requests of this isolate. */
export interface IsolateState {
  /** The KV snapshot this isolate serves from, refreshed in the background. */
  pools: PoolCache;
  observations: LocalObservations;
  limits: ClientLimiter;
  /** Gathers the attempt events of this isolate's requests into few queue sends. */
  events: EventBatcher;
  /** Probes keys now (the admin's "refresh balance"); wired at the entry from scheduler/. */
  probe: (env: GatewayEnv, keyIds: string[] | "all") => Promise<ProbeEvent[]>;
}
