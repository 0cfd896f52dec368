-- Organisations, patients and who is responsible for them (owned by care/).

CREATE TABLE organisations (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('hospital_department', 'municipal_service', 'gp_office')),
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE patients (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    display_name text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 200),
    birth_date date,
    conditions text[] NOT NULL DEFAULT '{}'
        CHECK (conditions <@ ARRAY['copd', 'heart_failure']::text[]),
    preferred_language text NOT NULL DEFAULT 'nb' CHECK (preferred_language IN ('nb', 'nn', 'en')),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- Responsibility over time: the row whose period holds a moment names the unit in charge then.
CREATE TABLE patient_responsibility (
    patient_id uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    organisation_id uuid NOT NULL REFERENCES organisations,
    role text NOT NULL CHECK (role IN ('responsible', 'backup')),
    valid_from timestamptz NOT NULL,
    valid_to timestamptz CHECK (valid_to IS NULL OR valid_to > valid_from),
    PRIMARY KEY (patient_id, role, valid_from)
);

-- Per-patient limits set by a clinician; a reading outside [low, high] opens an alert.
CREATE TABLE patient_thresholds (
    patient_id uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    code text NOT NULL,
    low double precision,
    high double precision,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (patient_id, code),
    CHECK (low IS NOT NULL OR high IS NOT NULL),
    CHECK (low IS NULL OR high IS NULL OR low < high)
);
