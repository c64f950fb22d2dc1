// @ts-check
/** The chaos run's table: figures, their values and goals, and whether each goal was met. */
import { MINIFLARE, SMOKE } from "./config.mjs";

export class Report {
  /** @type {[string, string, string, boolean | undefined][]} [figure, value, goal, met (undefined: not checked)] */
  rows = [];

  /** @param {string} title */
  section(title) {
    this.rows.push([`**${title}**`, "", "", undefined]);
  }

  /**
   * @param {string} what
   * @param {string} value
   * @param {string} [goal]
   * @param {boolean} [ok]
   */
  row(what, value, goal = "–", ok = undefined) {
    this.rows.push([what, value, goal, ok]);
  }

  /**
   * A goal that a few hundred requests cannot show: reported, enforced only on a full run.
   * @param {boolean} ok
   */
  statistical(ok) {
    return SMOKE ? undefined : ok;
  }

  /**
   * The three rollup equalities after a run (`attempts`: what the mock saw of the run's traffic).
   * @param {string} label
   * @param {import("./traffic.mjs").Stored} stored
   * @param {number} sent
   * @param {number} devProxy
   * @param {{ stats: { requests: number, reportedTokens: number } }} mock
   * @param {number} [attempts]
   */
  totals(label, stored, sent, devProxy, mock, attempts = mock.stats.requests) {
    this.row(
      `${label}: rollup requests = requests sent${MINIFLARE ? "" : " − refused by the dev proxy"}`,
      `${stored.requests} = ${sent - devProxy}`,
      "equal",
      stored.requests === sent - devProxy,
    );
    this.row(`${label}: rollup attempts = attempts the mock saw`, `${stored.attempts} = ${attempts}`, "equal", stored.attempts === attempts);
    this.row(
      `${label}: upstream-reported tokens = tokens the mock reported`,
      `${stored.reported} = ${mock.stats.reportedTokens}`,
      "equal",
      stored.reported === mock.stats.reportedTokens,
    );
  }

  /** Whether any goal was missed. */
  failed() {
    return this.rows.some((r) => r[3] === false);
  }

  /** The table as Markdown. */
  markdown() {
    const lines = ["| figure | value | goal |", "|---|---|---|"];
    for (const [what, value, goal, ok] of this.rows) {
      const verdict = ok === false ? " (missed)" : ok === undefined && goal !== "–" && goal !== "" ? " (not checked with --smoke)" : "";
      lines.push(`| ${what} | ${value}${verdict} | ${goal} |`);
    }
    return lines.join("\n");
  }
}
