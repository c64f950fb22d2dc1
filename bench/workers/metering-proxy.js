/**
 * The metering floor, for `npm run bench`: the least a key pool that counts
 * usage must do per request, with none of Keypool's features. It reads the
 * request whole (to learn its model), forwards it with one of a few fixed keys,
 * reads the answer whole (to learn its usage) and sends it back. With an EVENTS
 * queue bound it also ships one small event per request, gathered for 20 ms
 * into one message as Keypool's gateway does, for metering-log-consumer.js to
 * store. No client auth, key selection, retries, timeouts, header filtering,
 * event schema, validation, archive, rollups or health.
 */
const KEYS = ["sk-floor-0-aaaaaaaaaaaaaaaa", "sk-floor-1-aaaaaaaaaaaaaaaa", "sk-floor-2-aaaaaaaaaaaaaaaa"];
const decoder = new TextDecoder();
let sent = 0;
/** @typedef {{ id: string, ts: number, key: number, model: string, status: number, ms: number, prompt: number, completion: number }} FloorEvent */
/** The events waiting for the open batch's send, or null. @type {FloorEvent[] | null} */
let open = null;

/**
 * Adds an event to the open batch; the request that opens one sends it 20 ms later (its waitUntil waits).
 * @param {Queue} queue
 * @param {FloorEvent} event
 */
function ship(queue, event) {
  if (open) {
    open.push(event);
    if (open.length >= 100) open = null;
    return Promise.resolve();
  }
  const batch = [event];
  open = batch;
  return new Promise((resolve) => setTimeout(resolve, 20)).then(() => {
    if (open === batch) open = null;
    return queue.send({ events: batch }, { contentType: "json" });
  });
}

export default {
  /**
   * @param {Request} request
   * @param {{ UPSTREAM: string, EVENTS?: Queue }} env
   * @param {ExecutionContext} ctx
   */
  async fetch(request, env, ctx) {
    const started = Date.now();
    const bytes = await request.arrayBuffer();
    const { model } = JSON.parse(decoder.decode(bytes));
    const key = sent++ % KEYS.length;
    const path = new URL(request.url).pathname.replace(/^\/v1/, "");
    const res = await fetch(env.UPSTREAM + path, {
      method: "POST",
      headers: { "content-type": "application/json", authorization: `Bearer ${KEYS[key]}` },
      body: bytes,
    });
    const answer = await res.arrayBuffer();
    const usage = JSON.parse(decoder.decode(answer)).usage ?? {};
    if (env.EVENTS) {
      const event = {
        id: crypto.randomUUID(),
        ts: started,
        key,
        model,
        status: res.status,
        ms: Date.now() - started,
        prompt: usage.prompt_tokens ?? 0,
        completion: usage.completion_tokens ?? 0,
      };
      ctx.waitUntil(ship(env.EVENTS, event));
    }
    return new Response(answer, res);
  },
};
