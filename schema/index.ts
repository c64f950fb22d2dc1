export * from "./errors";
export * from "./events";
export * from "./providers";
export * from "./settings";
export * from "./snapshot";
export * from "./admin-api";
export * from "./buckets";
export * from "./health";
