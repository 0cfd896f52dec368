-- Per-device bearer tokens for HTTP ingest (owned by devices/). Only a SHA-256 of each token is
-- kept: a database dump or backup gives nobody a working token. `prefix` is the token's first
-- characters, to tell tokens apart in listings and revoke one; it is not secret.

CREATE TABLE device_tokens (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    device_id text NOT NULL REFERENCES devices ON DELETE CASCADE,
    token_hash bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
    prefix text NOT NULL UNIQUE CHECK (length(prefix) BETWEEN 4 AND 16),
    created_at timestamptz NOT NULL,
    revoked_at timestamptz
);
CREATE INDEX device_tokens_device ON device_tokens (device_id);
