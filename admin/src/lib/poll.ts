/**
 * Calls `load` now and every `ms` while the component lives; for use inside
 * `$effect`, whose teardown stops it. A slow answer never overlaps the next call.
 */
export function poll(load: () => Promise<void>, ms: number): () => void {
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = async () => {
    try {
      await load();
    } finally {
      if (!stopped) timer = setTimeout(tick, ms);
    }
  };
  void tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
