import { clientUsageOf, keyUsageAt, poolUsageSchema, type KeyUsage, type PoolUsage } from "../../schema";
import type { UsageView } from "./select-key";

/**
 * The keys' usage as published, read in place: a key's usage is built when it
 * is asked for, so taking a new version costs the JSON parse and one map of ids.
 */
class KeyUsageColumns {
  private readonly positions = new Map<string, number>();
  constructor(private readonly usage: PoolUsage) {
    const ids = usage.keyIds;
    for (let i = 0; i < ids.length; i++) this.positions.set(ids[i]!, i);
  }
  get size(): number {
    return this.positions.size;
  }
  has(id: string): boolean {
    return this.positions.has(id);
  }
  get(id: string): KeyUsage | undefined {
    const i = this.positions.get(id);
    return i === undefined ? undefined : keyUsageAt(this.usage, i);
  }
}

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
  const clients = new Map(Object.entries(parsed.data.clients).map(([id, t]) => [id, clientUsageOf(t)]));
  return { version: parsed.data.version, view: { at: parsed.data.generatedAt, keys: new KeyUsageColumns(parsed.data), clients } };
}
