-- The helsefellesskap (owned by care/): staff, care teams across organisations, identities,
-- hand-over between units and versioned care plans.

ALTER TABLE organisations
    ADD COLUMN org_number text UNIQUE CHECK (org_number ~ '^[0-9]{9}$'),
    ADD COLUMN timezone text NOT NULL DEFAULT 'Europe/Oslo',
    -- [{"weekday": 0..6 (Monday 0), "opens": "08:00", "closes": "15:30"}]; [] means always open.
    ADD COLUMN opening_hours jsonb NOT NULL DEFAULT '[]' CHECK (jsonb_typeof(opening_hours) = 'array');

-- The minimum about a patient. The national id is stored only where the installation is
-- configured for it (ID-porten log-in of patients matches on it).
ALTER TABLE patients
    ADD COLUMN national_id text UNIQUE CHECK (national_id ~ '^[0-9]{11}$'),
    ADD COLUMN phone text CHECK (length(phone) <= 32),
    ADD COLUMN email text CHECK (length(email) <= 254);

CREATE TABLE staff (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    role text NOT NULL CHECK (role IN ('nurse', 'physician', 'coordinator', 'administrator')),
    hpr_number text CHECK (hpr_number ~ '^[0-9]{1,9}$'),
    email text CHECK (length(email) <= 254),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Employment: which organisations a person works for, over time.
CREATE TABLE staff_memberships (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    staff_id uuid NOT NULL REFERENCES staff ON DELETE CASCADE,
    organisation_id uuid NOT NULL REFERENCES organisations,
    valid_from timestamptz NOT NULL,
    valid_to timestamptz CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE INDEX staff_memberships_staff ON staff_memberships (staff_id);

-- A care team spans organisations: its members may work for the hospital, the municipality or
-- the GP office. Access to a patient's data follows current team membership (tjenstlig behov).
CREATE TABLE care_teams (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
    description text NOT NULL DEFAULT '' CHECK (length(description) <= 2000),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE care_team_members (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    team_id uuid NOT NULL REFERENCES care_teams ON DELETE CASCADE,
    staff_id uuid NOT NULL REFERENCES staff ON DELETE CASCADE,
    valid_from timestamptz NOT NULL,
    valid_to timestamptz CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE INDEX care_team_members_staff ON care_team_members (staff_id);

CREATE TABLE care_team_patients (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    team_id uuid NOT NULL REFERENCES care_teams ON DELETE CASCADE,
    patient_id uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    valid_from timestamptz NOT NULL,
    valid_to timestamptz CHECK (valid_to IS NULL OR valid_to > valid_from)
);
CREATE INDEX care_team_patients_patient ON care_team_patients (patient_id);
CREATE INDEX care_team_patients_team ON care_team_patients (team_id);

-- Who a verified token speaks for: (issuer, sub) of HelseID, ID-porten or the local issuer.
CREATE TABLE identities (
    issuer text NOT NULL,
    subject text NOT NULL,
    staff_id uuid REFERENCES staff ON DELETE CASCADE,
    patient_id uuid REFERENCES patients ON DELETE CASCADE,
    PRIMARY KEY (issuer, subject),
    CHECK (num_nonnulls(staff_id, patient_id) = 1)
);

-- A proposal to move responsibility; the sender stays responsible until the receiver accepts.
CREATE TABLE handovers (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    patient_id uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    from_organisation_id uuid NOT NULL REFERENCES organisations,
    to_organisation_id uuid NOT NULL REFERENCES organisations,
    note text NOT NULL CHECK (length(note) BETWEEN 1 AND 4000),
    care_plan_version integer,
    proposed_by uuid NOT NULL REFERENCES staff,
    proposed_at timestamptz NOT NULL,
    state text NOT NULL DEFAULT 'proposed'
        CHECK (state IN ('proposed', 'accepted', 'declined', 'withdrawn')),
    decided_by uuid REFERENCES staff,
    decided_at timestamptz,
    decision_note text CHECK (length(decision_note) <= 4000),
    CHECK (from_organisation_id <> to_organisation_id),
    CHECK ((state = 'proposed') = (decided_at IS NULL))
);
CREATE UNIQUE INDEX handovers_one_open ON handovers (patient_id) WHERE state = 'proposed';

-- One care plan per patient, from a condition template; `version` rises with every change.
CREATE TABLE care_plans (
    patient_id uuid PRIMARY KEY REFERENCES patients ON DELETE CASCADE,
    template text NOT NULL CHECK (template IN ('copd', 'copd_hypercapnic', 'heart_failure')),
    version integer NOT NULL CHECK (version >= 1),
    spo2_scale smallint NOT NULL CHECK (spo2_scale IN (1, 2)),
    self_management text NOT NULL DEFAULT '' CHECK (length(self_management) <= 8000),
    updated_at timestamptz NOT NULL,
    updated_by uuid REFERENCES staff
);

-- What to measure and how often: at least every `every_hours`, late after `every_hours + grace_hours`.
CREATE TABLE care_plan_measurements (
    patient_id uuid NOT NULL REFERENCES care_plans ON DELETE CASCADE,
    code text NOT NULL,
    every_hours integer NOT NULL CHECK (every_hours BETWEEN 1 AND 24 * 31),
    grace_hours integer NOT NULL DEFAULT 0 CHECK (grace_hours >= 0),
    PRIMARY KEY (patient_id, code)
);

-- Thresholds gain red bands and the reason for a clinician's override of the template default.
ALTER TABLE patient_thresholds
    ADD COLUMN red_low double precision,
    ADD COLUMN red_high double precision,
    ADD COLUMN reason text CHECK (length(reason) <= 2000),
    ADD CONSTRAINT red_low_below_yellow CHECK (red_low IS NULL OR low IS NULL OR red_low <= low),
    ADD CONSTRAINT red_high_above_yellow CHECK (red_high IS NULL OR high IS NULL OR red_high >= high);

-- Every change to a care plan: who, when, why, and the whole plan before and after.
CREATE TABLE care_plan_versions (
    patient_id uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    version integer NOT NULL,
    changed_at timestamptz NOT NULL,
    changed_by uuid REFERENCES staff,
    reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 2000),
    old jsonb,
    new jsonb NOT NULL,
    PRIMARY KEY (patient_id, version)
);
