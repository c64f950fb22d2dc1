/** Whether the published snapshot is old enough (or missing) that the consumer should republish it. */
export function snapshotNeedsRefresh(generatedAt: number | null, now: number, maxAgeMs: number): boolean {
  return generatedAt === null || now - generatedAt > maxAgeMs;
}
