import type {
  AddKeysResponse,
  AlertKind,
  AlertView,
  DestinationKind,
  DestinationView,
  AuditEntry,
  ClientKeyStatus,
  ClientKeyView,
  KeyState,
  KeyView,
  Limits,
  OpenAIError,
  PriceBody,
  PriceView,
  RequestDetail,
  RequestPage,
  ReplayJob,
  SessionView,
  Settings,
  StatsBreakdown,
  StatsBucket,
  StatsHeadroom,
  StatsSeries,
  StatsSummary,
  UpstreamView,
} from "../../../schema";

export type { AlertKind, AlertView, DestinationKind, DestinationView };
export type { AuditEntry, ClientKeyStatus, ClientKeyView, PriceView, ReplayJob, RequestDetail, RequestPage };

/** A client key's fields as the create form sends them. */
export type NewClientKey = Pick<
  ClientKeyView,
  "name" | "rpmLimit" | "tpmLimit" | "rpdLimit" | "tpdLimit" | "monthlyTokenLimit" | "dailyBudget" | "monthlyBudget" | "models" | "smoothStreams"
>;

/** The price list: in force now and set for later, and the published prices Keypool knows. */
export interface PriceList {
  currency: string;
  data: PriceView[];
  published: { readOn: string; prices: PriceView[] };
}

/** An admin API failure, carrying the server's message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly retryAfter: number | null = null,
  ) {
    super(message);
  }
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`/admin/api${path}`, {
    method,
    credentials: "same-origin",
    headers: body === undefined ? {} : { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) {
    const err = (await res.json().catch(() => null)) as OpenAIError | null;
    const retryAfter = Number(res.headers.get("retry-after"));
    throw new ApiError(res.status, err?.error.message ?? `HTTP ${res.status}`, Number.isFinite(retryAfter) && retryAfter > 0 ? retryAfter : null);
  }
  return (await res.json()) as T;
}

export interface KeyQuery {
  limit: number;
  offset: number;
  q?: string;
  status?: KeyState | "";
  upstreamId?: string;
  sort?: string;
  nearLimit?: number | "";
}

const query = (params: Record<string, string | number | undefined>) =>
  Object.entries(params)
    .filter(([, v]) => v !== undefined && v !== "")
    .map(([k, v]) => `${k}=${encodeURIComponent(String(v))}`)
    .join("&");

/** The typed admin API the dashboard uses. */
export const api = {
  login: (password: string) => request<{ token: string; expiresAt: number }>("POST", "/login", { password }),
  logout: () => request<{ ok: boolean }>("POST", "/logout", {}),
  session: () => request<SessionView>("GET", "/session"),
  summary: () => request<StatsSummary>("GET", "/stats/summary"),
  headroom: () => request<StatsHeadroom>("GET", "/stats/headroom"),
  series: (bucket: StatsBucket, count: number, filters: Record<string, string> = {}) =>
    request<StatsSeries>("GET", `/stats/series?${query({ bucket, count, ...filters })}`),
  breakdown: (by: string, bucket: StatsBucket, count: number, filters: Record<string, string> = {}) =>
    request<StatsBreakdown>("GET", `/stats/breakdown?${query({ by, bucket, count, ...filters })}`),
  keys: (q: KeyQuery) => request<{ total: number; data: KeyView[] }>("GET", `/keys?${query({ ...q })}`),
  addKeys: (upstreamId: string, text: string) => request<AddKeysResponse>("POST", "/keys", { upstreamId, text }),
  importSeed: (upstreamId: string, tokens: unknown[]) =>
    request<{ added: number; duplicates: number; disabled: number; balances: number }>("POST", "/keys/import-seed", { upstreamId, tokens }),
  updateKey: (id: string, patch: Partial<Pick<KeyView, "enabled" | "weight" | "models" | "note" | "limits">>) =>
    request<unknown>("PATCH", `/keys/${id}`, patch),
  batchKeys: (action: "enable" | "disable" | "delete" | "probe", ids: string[]) =>
    request<{ matched: number; changed?: number }>("POST", "/keys/batch", { action, ids }),
  setKeyLimits: (ids: string[], limits: Limits) => request<{ matched: number; changed: number }>("POST", "/keys/batch", { action: "limits", ids, limits }),
  upstreams: () => request<{ data: (UpstreamView & { keys: number })[] }>("GET", "/upstreams"),
  createUpstream: (body: { name: string; baseUrl: string; kind: string; models: string[] }) => request<{ id: string }>("POST", "/upstreams", body),
  updateUpstream: (id: string, patch: Partial<UpstreamView>) => request<UpstreamView>("PATCH", `/upstreams/${id}`, patch),
  deleteUpstream: (id: string, cascade: boolean) => request<unknown>("DELETE", `/upstreams/${id}${cascade ? "?cascade=true" : ""}`),
  clientKeys: () => request<{ data: ClientKeyView[] }>("GET", "/client-keys"),
  createClientKey: (body: NewClientKey) => request<{ id: string; key: string }>("POST", "/client-keys", body),
  clientKeyUsage: (id: string) => request<ClientKeyStatus>("GET", `/client-keys/${encodeURIComponent(id)}/usage`),
  prices: () => request<PriceList>("GET", "/prices"),
  setPrice: (body: Partial<PriceBody> & { model: string }) => request<PriceView>("PUT", "/prices", body),
  removePrice: (model: string, upstreamId: string | null) => request<unknown>("DELETE", `/prices?${query({ model, upstreamId: upstreamId ?? undefined })}`),
  addPublishedPrices: () => request<{ added: number }>("POST", "/prices/published"),
  requests: (filters: Record<string, string | number | undefined>) => request<RequestPage>("GET", `/requests?${query(filters)}`),
  request: (id: string) => request<RequestDetail>("GET", `/requests/${encodeURIComponent(id)}`),
  /** The URL of an export of the requests a filter selects (the browser downloads it with the session cookie). */
  requestsExportUrl: (filters: Record<string, string | number | undefined>, format: "ndjson" | "csv") =>
    `/admin/api/requests/export?${query({ ...filters, format })}`,
  updateClientKey: (id: string, patch: Partial<ClientKeyView>) => request<unknown>("PATCH", `/client-keys/${id}`, patch),
  deleteClientKey: (id: string) => request<unknown>("DELETE", `/client-keys/${id}`),
  settings: () => request<Settings>("GET", "/settings"),
  updateSettings: (patch: Partial<Settings>) => request<Settings>("PATCH", "/settings", patch),
  audit: (limit: number) => request<{ data: AuditEntry[] }>("GET", `/audit?limit=${limit}`),
  destinations: () => request<{ data: DestinationView[] }>("GET", "/alerts/destinations"),
  createDestination: (body: { name: string; kind: DestinationKind; url: string; kinds: AlertKind[] }) =>
    request<DestinationView>("POST", "/alerts/destinations", body),
  updateDestination: (id: string, patch: Partial<{ name: string; url: string; kinds: AlertKind[]; enabled: boolean; rotateSecret: true }>) =>
    request<DestinationView>("PATCH", `/alerts/destinations/${encodeURIComponent(id)}`, patch),
  deleteDestination: (id: string) => request<unknown>("DELETE", `/alerts/destinations/${encodeURIComponent(id)}`),
  testDestination: (id: string) =>
    request<{ delivered: boolean; status: number | null; error: string | null; alertId: string }>(
      "POST",
      `/alerts/destinations/${encodeURIComponent(id)}/test`,
      {},
    ),
  alerts: (filters: Record<string, string | number | undefined>) =>
    request<{ alerts: AlertView[]; nextCursor: string | null }>("GET", `/alerts?${query(filters)}`),
  scrapeToken: () => request<{ configured: boolean; createdAt: number | null }>("GET", "/metrics/token"),
  createScrapeToken: () => request<{ token: string; createdAt: number }>("POST", "/metrics/token", {}),
  revokeScrapeToken: () => request<{ deleted: boolean }>("DELETE", "/metrics/token"),
  startReplay: (kind: "rebuild" | "requeue" | "refold") => request<{ id: string }>("POST", "/replay", { kind }),
  replay: (id: string) => request<ReplayJob>("GET", `/replay/${id}`),
};
