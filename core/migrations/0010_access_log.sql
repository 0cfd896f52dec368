-- The access log (Normen fact sheet 15): one append-only row per request that reads or writes
-- patient data. Owned by care/access.py; no patient foreign key, so it outlives an erasure.

CREATE TABLE access_log (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL,
    actor_kind text NOT NULL CHECK (actor_kind IN ('staff', 'patient', 'device', 'system')),
    actor_id text NOT NULL,
    actor_name text NOT NULL,
    role text NOT NULL,
    hpr_number text,
    organisation_id uuid,
    organisation_name text,
    patient_ids uuid[] NOT NULL,
    resource text NOT NULL,
    action text NOT NULL CHECK (action IN ('read', 'create', 'update', 'delete', 'export', 'erase')),
    interface text NOT NULL CHECK (interface IN ('api', 'dashboard', 'fhir', 'cli')),
    reason_code text NOT NULL,
    request_id text
);
CREATE INDEX access_log_patients ON access_log USING gin (patient_ids);
CREATE INDEX access_log_at ON access_log (at);

CREATE FUNCTION access_log_is_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the access log is append-only' USING ERRCODE = 'insufficient_privilege';
END
$$;

CREATE TRIGGER access_log_append_only
    BEFORE UPDATE OR DELETE ON access_log
    FOR EACH ROW EXECUTE FUNCTION access_log_is_append_only();
CREATE TRIGGER access_log_no_truncate
    BEFORE TRUNCATE ON access_log
    FOR EACH STATEMENT EXECUTE FUNCTION access_log_is_append_only();
