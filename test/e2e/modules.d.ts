// Types for the plain-JS dev tools the end-to-end tests drive.
declare module "*/tools/mock-upstream/server.mjs" {
  export interface KeyBehavior {
    mode?: "ok" | "rate_limit" | "unauthorized" | "no_balance" | "server_error" | "drop";
    retryAfterSeconds?: number;
    delayMs?: number;
    chunkDelayMs?: number;
    omitUsage?: boolean;
  }
  export function startMockUpstream(options?: { port?: number }): Promise<{
    port: number;
    baseUrl: string;
    stats: {
      requests: number;
      byKey: Record<string, number>;
      promptTokens: number;
      completionTokens: number;
      totalTokens: number;
      cancelledStreams: number;
      lastBody: unknown;
    };
    setKeyBehavior(key: string, behavior: KeyBehavior): void;
    close(): Promise<void>;
  }>;
}
declare module "*/scripts/lib/stack.mjs" {
  export const ROOT: string;
  export function generateSecrets(): Record<"ADMIN_PASSWORD" | "JWT_SECRET" | "KEY_ENCRYPTION_KEY", string>;
  export function freePort(preferred?: number): Promise<number>;
  export function buildDashboard(options?: { quiet?: boolean }): Promise<string>;
  export function applyMigrations(persistTo: string, options?: { quiet?: boolean }): Promise<string>;
  export function startWrangler(options: {
    port: number;
    inspectorPort: number;
    persistTo: string;
    vars?: Record<string, string>;
    quiet?: boolean;
    logLevel?: string;
  }): { url: string; log(): string; ready(timeoutMs?: number): Promise<void>; stop(): Promise<void> };
}
declare module "*/scripts/lib/admin-client.mjs" {
  export function adminSession(baseUrl: string, password: string): Promise<(method: string, path: string, body?: unknown) => Promise<unknown>>;
  export function waitForModel(baseUrl: string, clientKey: string, model: string, timeoutMs?: number): Promise<void>;
}
