// @ts-check
/**
 * A deterministic uniform generator in [0, 1) (mulberry32), so fault draws,
 * distributions and generated logs can be repeated. Plain JavaScript without
 * imports: the mock upstream (Node) and the tests (Node and workerd) share it.
 * @param {number} seed
 * @returns {() => number}
 */
export function seeded(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
