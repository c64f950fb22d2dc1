/** A deterministic uniform generator in [0, 1) (mulberry32). */
export function seeded(seed: number): () => number;
