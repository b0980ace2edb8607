-- API keys of principals (service accounts, scripts): sent as a bearer token
-- "serac_<id>_<secret>"; only an argon2id hash of the secret is stored. Deleting the row
-- revokes the key on every replica at its next request.
CREATE TABLE api_keys (
    id               TEXT PRIMARY KEY,
    principal_id     TEXT NOT NULL REFERENCES principals (id) ON DELETE CASCADE,
    secret_hash      TEXT NOT NULL,
    created_at_ms    BIGINT NOT NULL,
    expires_at_ms    BIGINT,
    last_used_at_ms  BIGINT
);
CREATE INDEX api_keys_by_principal ON api_keys (principal_id);
