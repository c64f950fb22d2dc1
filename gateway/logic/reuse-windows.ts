/** How long costly stats answers are reused (gateway/storage/stats-reuse.ts keeps them); constants only, so the scale model reads the same. */

/**
 * A costly answer is reused while it is younger than this many times what
 * computing it took: however many pages ask, the read then holds D1 at most a
 * twentieth of the time (more where the longest reuse below cuts that short).
 */
export const REUSE_FACTOR = 20;

/** An answer computed faster than this is not kept: computing it again costs less than it would save (a small pool's reads). */
export const COSTLY_MS = 100;

/**
 * The longest an answer is reused, whatever it took. A breakdown by key or
 * client key (it reads every key's or client key's rows of its range), by
 * bucket size: a minute of a view by minute, five of one by hour, a quarter of
 * an hour of one by day. The headroom (it reads every key): 15 s. The other
 * stats reads sum a few hundred rows a bucket and are never kept.
 */
export const REUSE_LONGEST_MS = { breakdown: { minute: 60_000, hour: 300_000, day: 900_000 }, headroom: 15_000 } as const;
