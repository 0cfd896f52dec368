-- The rule engine's state (owned by alerts/): alert lifecycle and routing, snoozes, hysteresis,
-- escalation policies, notification settings and the notification outbox, and questionnaires.

ALTER TABLE alerts
    ADD COLUMN category text NOT NULL DEFAULT 'clinical'
        CHECK (category IN ('clinical', 'adherence', 'technical')),
    ADD COLUMN late boolean NOT NULL DEFAULT false,
    ADD COLUMN details jsonb NOT NULL DEFAULT '{}',
    ADD COLUMN assigned_to uuid REFERENCES staff ON DELETE SET NULL,
    ADD COLUMN acknowledged_by uuid REFERENCES staff ON DELETE SET NULL,
    ADD COLUMN acknowledged_at timestamptz,
    ADD COLUMN resolved_by uuid REFERENCES staff ON DELETE SET NULL,
    ADD COLUMN resolved_at timestamptz,
    ADD COLUMN outcome text CHECK (outcome IN ('contacted_patient', 'changed_treatment',
        'referred', 'no_action_needed', 'technical_fixed', 'false_alarm')),
    ADD COLUMN resolution_note text CHECK (length(resolution_note) <= 4000),
    ADD COLUMN routed_to uuid REFERENCES organisations,
    ADD COLUMN escalation_level smallint NOT NULL DEFAULT 0,
    ADD COLUMN route text NOT NULL DEFAULT 'responsible'
        CHECK (route IN ('responsible', 'backup', 'on_call', 'out_of_hours')),
    ADD COLUMN escalate_at timestamptz;
CREATE INDEX alerts_escalation_due ON alerts (escalate_at) WHERE state = 'open';

-- Every action on an alert, by a person or by the engine: the alert's audit trail.
CREATE TABLE alert_events (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id bigint NOT NULL REFERENCES alerts ON DELETE CASCADE,
    at timestamptz NOT NULL,
    actor uuid REFERENCES staff ON DELETE SET NULL,
    action text NOT NULL,
    details jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX alert_events_alert ON alert_events (alert_id, id);

-- Hysteresis: after an alert is resolved its rule stays disarmed for that patient until a
-- clearly normal reading re-arms it, so a value hovering at a limit does not flap.
CREATE TABLE alert_arming (
    patient_id uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    rule_id text NOT NULL,
    armed boolean NOT NULL,
    disarmed_severity text,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (patient_id, rule_id)
);

-- A snooze mutes one rule instance (rule, measurement and direction) for one patient.
CREATE TABLE alert_snoozes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    rule_id text NOT NULL,
    until timestamptz NOT NULL,
    reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 2000),
    created_by uuid REFERENCES staff ON DELETE SET NULL,
    created_at timestamptz NOT NULL
);
CREATE INDEX alert_snoozes_active ON alert_snoozes (patient_id, rule_id, until);

-- Per unit: how long an alert may wait for acknowledgement, and where it goes next.
CREATE TABLE escalation_policies (
    organisation_id uuid PRIMARY KEY REFERENCES organisations ON DELETE CASCADE,
    red_minutes integer NOT NULL DEFAULT 15 CHECK (red_minutes BETWEEN 1 AND 1440),
    yellow_minutes integer NOT NULL DEFAULT 480 CHECK (yellow_minutes BETWEEN 1 AND 10080),
    on_call_channel text CHECK (on_call_channel IN ('email', 'webhook', 'apprise')),
    on_call_address text CHECK (length(on_call_address) <= 2000),
    out_of_hours_channel text CHECK (out_of_hours_channel IN ('email', 'webhook', 'apprise')),
    out_of_hours_address text CHECK (length(out_of_hours_address) <= 2000),
    include_values boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- Staff choose their channels per severity.
CREATE TABLE notification_subscriptions (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    staff_id uuid NOT NULL REFERENCES staff ON DELETE CASCADE,
    channel text NOT NULL CHECK (channel IN ('email', 'webhook', 'apprise')),
    address text NOT NULL CHECK (length(address) BETWEEN 1 AND 2000),
    min_severity text NOT NULL DEFAULT 'red' CHECK (min_severity IN ('yellow', 'red')),
    UNIQUE (staff_id, channel, address)
);

-- The outbox: written in the alert change's transaction, delivered by the dispatcher at least
-- once. The id is the idempotency key every delivery attempt carries.
CREATE TABLE notifications (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    alert_id bigint REFERENCES alerts ON DELETE CASCADE,
    created_at timestamptz NOT NULL,
    channel text NOT NULL CHECK (channel IN ('email', 'webhook', 'apprise')),
    address text NOT NULL,
    message jsonb NOT NULL,
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'delivered', 'dead')),
    attempts integer NOT NULL DEFAULT 0,
    next_attempt_at timestamptz NOT NULL,
    last_error text,
    delivered_at timestamptz
);
CREATE INDEX notifications_due ON notifications (next_attempt_at) WHERE state = 'pending';

-- Symptom questionnaires: the daily check (yes/no) and the CAT (8 items, 0-5 each).
CREATE TABLE questionnaire_responses (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    kind text NOT NULL CHECK (kind IN ('daily_symptoms', 'cat')),
    answered_at timestamptz NOT NULL,
    answers jsonb NOT NULL,
    total integer,
    received_at timestamptz NOT NULL,
    UNIQUE (patient_id, kind, answered_at)
);
CREATE INDEX questionnaire_responses_patient ON questionnaire_responses (patient_id, answered_at);
