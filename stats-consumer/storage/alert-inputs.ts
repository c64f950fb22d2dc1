import { dayStart, monthStart, parseStoredSettings, type Settings } from "../../schema";
import { clientDaysAcross, rollupsKeptFrom, selectClientDays } from "../../storage/rollups";
import type { FoldDatabases } from "../../storage/fold-databases";
import { selectSettings } from "../../storage/settings";
import type { ClientQuotaRow } from "../logic/alert-conditions";

/**
 * Client keys with a day or month quota or budget, and what they used today and this month (the pool's time zone):
 * in one round trip to one database; over several fold databases, the client keys from the first (the
 * configuration's) and their use added up over all.
 */
export async function readClientQuotaRows(
  dbs: FoldDatabases,
  now: number,
): Promise<{ settings: Settings; rows: ClientQuotaRow[]; today: number; month: number }> {
  const db = dbs[0];
  const settings = parseStoredSettings(((await selectSettings(db).first<{ value: string }>()) ?? { value: null }).value);
  const [today, month] = [dayStart(now, settings.timeZone), monthStart(now, settings.timeZone)];
  const minutesFrom = rollupsKeptFrom(settings, "minute", now, "client");
  const quotaIds = `SELECT id FROM client_keys WHERE enabled = 1 AND (rpd_limit IS NOT NULL OR tpd_limit IS NOT NULL
    OR monthly_token_limit IS NOT NULL OR daily_budget_micros IS NOT NULL OR monthly_budget_micros IS NOT NULL)`;
  const selectClients = db.prepare(
    `SELECT id, name, rpd_limit, tpd_limit, monthly_token_limit, daily_budget_micros, monthly_budget_micros FROM client_keys WHERE id IN (${quotaIds})`,
  );
  let clients: Record<string, unknown>[];
  let used: Map<string, Record<string, unknown>>;
  if (dbs.length === 1) {
    const [c, days] = await db.batch<Record<string, unknown>>([selectClients, selectClientDays(db, quotaIds, month, today, minutesFrom)]);
    clients = c!.results;
    used = new Map(days!.results.map((r) => [String(r.client_key_id), r]));
  } else {
    clients = (await selectClients.all<Record<string, unknown>>()).results;
    used = await clientDaysAcross(
      dbs,
      clients.map((c) => String(c.id)),
      month,
      today,
      minutesFrom,
    );
  }
  const n = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return {
    settings,
    today,
    month,
    rows: clients.map((c) => {
      const u = used.get(String(c.id));
      return {
        id: String(c.id),
        name: String(c.name),
        limits: {
          rpd: n(c.rpd_limit),
          tpd: n(c.tpd_limit),
          monthly_tokens: n(c.monthly_token_limit),
          daily_budget: n(c.daily_budget_micros),
          monthly_budget: n(c.monthly_budget_micros),
        },
        used: {
          dayRequests: Number(u?.day_requests ?? 0),
          dayTokens: Number(u?.day_tokens ?? 0),
          dayCost: Number(u?.day_cost ?? 0),
          monthTokens: Number(u?.month_tokens ?? 0),
          monthCost: Number(u?.month_cost ?? 0),
        },
      };
    }),
  };
}
