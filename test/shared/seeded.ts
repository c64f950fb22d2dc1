/** The project's one deterministic generator, shared with the mock upstream. */
export { seeded } from "../../tools/seeded.mjs";
