/**
 * The newest D1 migration this code was written for. A deployment's database must
 * have applied it (the gateway's `/healthz?deep=1` checks); a unit test keeps it
 * equal to the last file in schema/migrations.
 */
export const SCHEMA_MIGRATION = "0027_request_log_one_row.sql";
