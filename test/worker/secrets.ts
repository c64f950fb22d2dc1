/** Secrets the Worker tests run with (never used outside tests). */
export const TEST_SECRETS = {
  ADMIN_PASSWORD: "test-admin-password",
  JWT_SECRET: "test-jwt-secret-test-jwt-secret-0123456789",
  // 32 zero-to-31 bytes, base64url.
  KEY_ENCRYPTION_KEY: "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8",
};
