import type { OpenAIError, StatsSeries, StatsSummary } from "../../../schema";

/** An admin API failure, carrying the server's message. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
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
    throw new ApiError(res.status, err?.error.message ?? `HTTP ${res.status}`);
  }
  return (await res.json()) as T;
}

/** The typed admin API the dashboard uses. */
export const api = {
  login: (password: string) => request<{ token: string; expiresAt: number }>("POST", "/login", { password }),
  logout: () => request<{ ok: boolean }>("POST", "/logout", {}),
  session: () => request<{ subject: string }>("GET", "/session"),
  summary: () => request<StatsSummary>("GET", "/stats/summary"),
  series: (bucket: "minute" | "hour", count: number) => request<StatsSeries>("GET", `/stats/series?bucket=${bucket}&count=${count}`),
};
