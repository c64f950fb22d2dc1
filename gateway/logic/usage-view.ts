import { clientUsageOf, keyUsageOf, poolUsageSchema } from "../../schema";
import type { UsageView } from "./select-key";

/** The pool's usage as published, or null when the value is not one. */
export function parsePoolUsage(value: string): { version: number; view: UsageView } | null {
  let json: unknown;
  try {
    json = JSON.parse(value);
  } catch {
    return null;
  }
  const parsed = poolUsageSchema.safeParse(json);
  if (!parsed.success) return null;
  const keys = new Map(Object.entries(parsed.data.keys).map(([id, t]) => [id, keyUsageOf(t)]));
  const clients = new Map(Object.entries(parsed.data.clients).map(([id, t]) => [id, clientUsageOf(t)]));
  return { version: parsed.data.version, view: { at: parsed.data.generatedAt, keys, clients } };
}
