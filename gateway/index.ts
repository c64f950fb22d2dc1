import { createIsolateState, createWorker } from "./worker";

/** The deployed gateway: the OpenAI and admin routes, the dashboard's assets, and the scheduler's cron. */
export default createWorker(createIsolateState());
