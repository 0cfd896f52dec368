-- Log-in through HelseID and ID-porten (owned by core/oidc.py, core/auth.py and care/national_ids.py).

-- The national identity number, sealed (AES-256-GCM under a key kept outside the database) with
-- a keyed hash (HMAC-SHA-256) to find a patient by it: a dump holds neither the number nor a
-- hash anyone could compute from a guessed one. Numbers stored in plain text before are kept
-- in `national_id_unsealed` until the next start seals them (heimvakt.platform) and empties it;
-- nothing else reads that column.
ALTER TABLE patients RENAME COLUMN national_id TO national_id_unsealed;
ALTER TABLE patients
    ADD COLUMN national_id_sealed bytea,
    ADD COLUMN national_id_hash bytea UNIQUE,
    ADD CONSTRAINT national_id_sealed_with_hash
        CHECK ((national_id_sealed IS NULL) = (national_id_hash IS NULL));

-- The OpenID Connect client's own key pair (private_key_jwt, DPoP proofs): made by each
-- installation at first start, sealed like the built-in issuer's signing keys. Its public half
-- is served at /auth/oidc/jwks.json for HelseID and ID-porten to fetch.
CREATE TABLE oidc_client_keys (
    kid text PRIMARY KEY,
    sealed_private_key bytea NOT NULL,
    created_at timestamptz NOT NULL,
    retired_at timestamptz
);

-- One row per log-in under way: `state` (as its SHA-256, the row's key), `nonce` and the PKCE
-- verifier stay here, never in the browser; the callback deletes the row it uses, so a state
-- is good for one callback only.
CREATE TABLE oidc_log_ins (
    state_hash bytea PRIMARY KEY,
    issuer_name text NOT NULL,
    nonce text NOT NULL,
    code_verifier text NOT NULL,
    language text,
    expires_at timestamptz NOT NULL
);
CREATE INDEX oidc_log_ins_expires_at ON oidc_log_ins (expires_at);

-- A dashboard session opened by a HelseID or ID-porten log-in: the cookie holds a random value
-- whose SHA-256 keys the row, so a dump of this table opens no session. Log-out deletes it.
CREATE TABLE oidc_sessions (
    id_hash bytea PRIMARY KEY,
    issuer text NOT NULL,
    subject text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('staff', 'patient')),
    issuer_name text NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX oidc_sessions_expires_at ON oidc_sessions (expires_at);

-- A refused log-in is logged too, by someone Heimvakt does not know (yet).
ALTER TABLE access_log DROP CONSTRAINT access_log_actor_kind_check;
ALTER TABLE access_log ADD CONSTRAINT access_log_actor_kind_check
    CHECK (actor_kind IN ('staff', 'patient', 'relative', 'device', 'system', 'anonymous'));
