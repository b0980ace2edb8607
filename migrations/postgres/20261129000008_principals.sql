-- Principals of authentication (--auth oauth2): who may obtain tokens with the OAuth2 client
-- credentials flow. Secrets are stored only as argon2 hashes (PHC strings).
CREATE TABLE principals (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    client_id     TEXT NOT NULL UNIQUE,
    secret_hash   TEXT NOT NULL,
    admin         BOOLEAN NOT NULL,
    created_at_ms BIGINT NOT NULL
);

-- Keys that sign the tokens Serac issues (HS256), shared by every replica; a token names its
-- key by kid, so a new key can be added while tokens of the old one are still honoured.
CREATE TABLE signing_keys (
    kid           TEXT PRIMARY KEY,
    secret        TEXT NOT NULL,
    created_at_ms BIGINT NOT NULL
);
