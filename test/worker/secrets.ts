/** Secrets the Worker tests run with (never used outside tests). */
export const TEST_SECRETS = {
  ADMIN_PASSWORD: "test-admin-password",
  JWT_SECRET: "test-jwt-secret-test-jwt-secret-0123456789",
  // 32 zero-to-31 bytes, base64url.
  KEY_ENCRYPTION_KEY: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
  // 32 bytes 32 to 63, base64url.
  ALERT_ENCRYPTION_KEY: "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8",
};
