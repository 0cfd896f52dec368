-- Sessions, log-in throttling and a sealed signing key, owned by core/auth.py (docs/security.md).

-- The built-in issuer's private key is now sealed (AES-256-GCM) with a key kept outside the
-- database (HEIMVAKT_ISSUER_KEY_FILE), so a dump of this table cannot sign tokens. The keys kept
-- in plain text until now are in every earlier backup and must count as exposed: they are
-- dropped, and the next start makes a new, sealed one. The tokens they signed end with them;
-- they have no row in local_sessions below and would be refused anyway.
DELETE FROM signing_keys;
ALTER TABLE signing_keys DROP COLUMN private_key_pem;
ALTER TABLE signing_keys ADD COLUMN sealed_private_key bytea NOT NULL;

-- One row per open session of the built-in issuer: every token it signs has one, keyed by the
-- token's `jti`, and a token without its row is refused on every request (API and dashboard).
-- Log-out deletes the row; a password reset deletes every row of the account.
CREATE TABLE local_sessions (
    jti text PRIMARY KEY,
    subject text NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX local_sessions_subject ON local_sessions (subject);
CREATE INDEX local_sessions_expires_at ON local_sessions (expires_at);

-- Failed log-ins per account (user name as typed) and per client address, shared by every app
-- process. Past a number of failures the key is blocked, for a time that doubles with each
-- further failure; a quiet period starts the count again.
CREATE TABLE login_failures (
    scope text NOT NULL CHECK (scope IN ('account', 'address')),
    key text NOT NULL,
    failures integer NOT NULL CHECK (failures > 0),
    last_failure_at timestamptz NOT NULL,
    blocked_until timestamptz,
    PRIMARY KEY (scope, key)
);
CREATE INDEX login_failures_last_failure_at ON login_failures (last_failure_at);
