-- Principals of an external identity provider (--oidc-issuer): named by a claim of the
-- provider's tokens, made at their first request or beforehand by an admin. They have no
-- usable client secret (their secret_hash is no argon2 hash, so it verifies nothing, and the
-- token endpoint refuses them), so a client-credentials principal is never one of them.
ALTER TABLE principals ADD COLUMN external INTEGER NOT NULL DEFAULT 0;
