-- Relatives (pårørende) as proxies, owned by care/ (care/proxies.py, docs/security.md): a
-- relative acts for a patient only through a consent that the patient gave (or a nurse
-- recorded), within its scope, before its end and until the patient withdraws it.

CREATE TABLE relatives (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    -- Where the patient's reminders reach them, when their consent's scope includes them.
    email text CHECK (length(email) <= 254),
    created_at timestamptz NOT NULL
);

-- A relative logs in as patients do: a built-in issuer's account, or an ID-porten subject.
ALTER TABLE identities
    ADD COLUMN relative_id uuid REFERENCES relatives ON DELETE CASCADE,
    DROP CONSTRAINT identities_check,
    ADD CONSTRAINT identities_one_person CHECK (num_nonnulls(staff_id, patient_id, relative_id) = 1);
CREATE INDEX identities_relative ON identities (relative_id) WHERE relative_id IS NOT NULL;

-- One consent per invitation. Until it is accepted it holds only the hash of the one-time
-- invitation code; accepting ties it to the relative who logs in with the code. It grants
-- nothing after `valid_to` or once `withdrawn_at` is set (checked on every request).
CREATE TABLE proxy_consents (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    patient_id uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    relative_id uuid NOT NULL REFERENCES relatives ON DELETE CASCADE,
    see_own_view boolean NOT NULL,
    receive_reminders boolean NOT NULL,
    answer_questionnaires boolean NOT NULL,
    valid_from timestamptz NOT NULL,
    valid_to timestamptz NOT NULL CHECK (valid_to > valid_from),
    -- Who invited: the patient themself, or a staff member who recorded the patient's consent
    -- (how it was given, in `consent_note`).
    invited_by_kind text NOT NULL CHECK (invited_by_kind IN ('patient', 'staff')),
    invited_by_id uuid NOT NULL,
    consent_note text CHECK (length(consent_note) <= 1000),
    CHECK (invited_by_kind = 'patient' OR length(consent_note) > 0),
    invitation_hash bytea UNIQUE,
    accepted_at timestamptz,
    withdrawn_at timestamptz,
    withdrawn_by_kind text CHECK (withdrawn_by_kind IN ('patient', 'staff'))
);
CREATE INDEX proxy_consents_relative ON proxy_consents (relative_id, patient_id);
CREATE INDEX proxy_consents_patient ON proxy_consents (patient_id);

-- A questionnaire a relative filled in on the patient's behalf says so.
ALTER TABLE questionnaire_responses
    ADD COLUMN answered_by_relative_id uuid REFERENCES relatives ON DELETE SET NULL;

-- A relative's looks are logged as everyone's, and shown to the patient.
ALTER TABLE access_log
    DROP CONSTRAINT access_log_actor_kind_check,
    ADD CONSTRAINT access_log_actor_kind_check
        CHECK (actor_kind IN ('staff', 'patient', 'relative', 'device', 'system'));
