import { z } from "zod";

/** The OpenAI error body: every error Keypool answers has exactly this shape. */
export const openAIErrorSchema = z.object({
  error: z.object({
    message: z.string(),
    type: z.string(),
    param: z.string().nullable(),
    code: z.string().nullable(),
  }),
});
export type OpenAIError = z.infer<typeof openAIErrorSchema>;

/** Error `type` values Keypool uses, matching the ones OpenAI's own API sends. */
const errorTypes = [
  "invalid_request_error",
  "authentication_error",
  "permission_error",
  "not_found_error",
  "rate_limit_error",
  "server_error",
  "service_unavailable",
] as const;
export type ErrorType = (typeof errorTypes)[number];

/** Builds an OpenAI-shaped error body. */
export function openAIError(message: string, type: ErrorType, code: string | null = null, param: string | null = null): OpenAIError {
  return { error: { message, type, param, code } };
}
