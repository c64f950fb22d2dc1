import en from "../locales/en";
import zh from "../locales/zh";

export type Locale = "en" | "zh";
export type MessageKey = keyof typeof en;

const dictionaries: Record<Locale, Record<MessageKey, string>> = { en, zh };
const STORAGE_KEY = "keypool.locale";

function initialLocale(): Locale {
  const saved = localStorage.getItem(STORAGE_KEY);
  if (saved === "en" || saved === "zh") return saved;
  return navigator.language.toLowerCase().startsWith("zh") ? "zh" : "en";
}

/** The current language; every string of the dashboard follows it. */
export const i18n = $state<{ locale: Locale }>({ locale: initialLocale() });

export function setLocale(locale: Locale): void {
  i18n.locale = locale;
  localStorage.setItem(STORAGE_KEY, locale);
  document.documentElement.lang = locale === "zh" ? "zh-CN" : "en";
}

/** The message for `key` in the current language, with `{name}` placeholders filled. */
export function t(key: MessageKey, params: Record<string, string | number> = {}): string {
  const template = dictionaries[i18n.locale][key] ?? en[key];
  return template.replace(/\{(\w+)\}/g, (_, name: string) => String(params[name] ?? `{${name}}`));
}

/** Numbers, dates and times in the current language. */
export const fmt = {
  number: (n: number) => new Intl.NumberFormat(i18n.locale === "zh" ? "zh-CN" : "en-US").format(n),
  time: (ts: number) => new Intl.DateTimeFormat(i18n.locale === "zh" ? "zh-CN" : "en-US", { hour: "2-digit", minute: "2-digit" }).format(ts),
  date: (ts: number) => new Intl.DateTimeFormat(i18n.locale === "zh" ? "zh-CN" : "en-US", { month: "short", day: "numeric" }).format(ts),
  dateTime: (ts: number) =>
    new Intl.DateTimeFormat(i18n.locale === "zh" ? "zh-CN" : "en-US", {
      month: "short",
      day: "numeric",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
    }).format(ts),
  /** Counts in full up to 99,999, short beyond: 1,250,000 → 1.3M (万 in Chinese). */
  compact: (n: number) =>
    new Intl.NumberFormat(i18n.locale === "zh" ? "zh-CN" : "en-US", n < 100_000 ? {} : { notation: "compact", maximumFractionDigits: 1 }).format(n),
  /** A moment ahead, with its zone: the time if it is today, else the day too ("Dec 5, 00:00 PST"). */
  until: (ts: number) => {
    const sameDay = new Date(ts).toDateString() === new Date().toDateString();
    return new Intl.DateTimeFormat(i18n.locale === "zh" ? "zh-CN" : "en-US", {
      ...(sameDay ? {} : { month: "short", day: "numeric" }),
      hour: "2-digit",
      minute: "2-digit",
      timeZoneName: "short",
    }).format(ts);
  },
  /** Money from integer micro-units: cents as usual, more digits for amounts under a cent ($0.000068). */
  money: (micros: number, currency: string) =>
    new Intl.NumberFormat(i18n.locale === "zh" ? "zh-CN" : "en-US", {
      style: "currency",
      currency: currency || "USD",
      minimumFractionDigits: 2,
      maximumFractionDigits: micros !== 0 && Math.abs(micros) < 10_000 ? 6 : 2,
    }).format(micros / 1_000_000),
  /** Spend with what it leaves out: "$1.20", "$1.20 + unknown" when some usage had no price, "unknown" when all of it. */
  spend: (micros: number, unpriced: number, currency: string) =>
    unpriced > 0 && micros === 0 ? t("spend.unknown") : unpriced > 0 ? `${fmt.money(micros, currency)} + ${t("spend.unknown")}` : fmt.money(micros, currency),
  percent: (x: number | null) => (x === null ? "—" : `${(x * 100).toFixed(1)}%`),
  ms: (x: number | null) => (x === null ? "—" : `${Math.round(x)} ms`),
};
