/** The dashboard's pages, addressed by the URL hash so the Worker serves one page. */
export type Page =
  "overview" | "keys" | "key" | "upstreams" | "client-keys" | "client-key" | "requests" | "request" | "prices" | "alerts" | "settings" | "audit";

const PAGES: Page[] = ["overview", "keys", "key", "upstreams", "client-keys", "client-key", "requests", "request", "prices", "alerts", "settings", "audit"];

function parse(hash: string): { page: Page; id: string | null } {
  const [page, id] = hash.replace(/^#\/?/, "").split("/");
  return PAGES.includes(page as Page) ? { page: page as Page, id: id ? decodeURIComponent(id) : null } : { page: "overview", id: null };
}

export const route = $state(parse(location.hash));

window.addEventListener("hashchange", () => Object.assign(route, parse(location.hash)));

/** The href of a page. */
export function href(page: Page, id?: string): string {
  return `#/${page}${id ? `/${encodeURIComponent(id)}` : ""}`;
}

/** The href of the request log filtered as `filters` says (they ride in the hash: `#/requests/clientKeyId=…&failed=true`). */
export function requestsHref(filters: Record<string, string>): string {
  return href("requests", new URLSearchParams(filters).toString());
}
