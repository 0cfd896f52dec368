-- Fewer, better alerts (issue 12): episodes, the care plan's SpO2 target and per-patient rule
-- parameters, and each unit's technical contacts.

-- An episode: the alerts about one patient and one problem that arrived close together
-- (alerts/episodes.py). It is what a nurse sees, acknowledges, resolves and is notified about;
-- its alerts stay as its parts. Routing and escalation move from the alert to the episode.
CREATE TABLE alert_episodes (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    problem text NOT NULL CHECK (problem IN ('clinical', 'adherence', 'technical')),
    severity text NOT NULL CHECK (severity IN ('yellow', 'red')),
    state text NOT NULL DEFAULT 'open' CHECK (state IN ('open', 'acknowledged', 'resolved')),
    first_measured_at timestamptz NOT NULL,
    last_measured_at timestamptz NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL,
    late boolean NOT NULL DEFAULT false,
    assigned_to uuid REFERENCES staff ON DELETE SET NULL,
    acknowledged_by uuid REFERENCES staff ON DELETE SET NULL,
    acknowledged_at timestamptz,
    resolved_by uuid REFERENCES staff ON DELETE SET NULL,
    resolved_at timestamptz,
    outcome text CHECK (outcome IN ('contacted_patient', 'changed_treatment', 'referred',
        'no_action_needed', 'technical_fixed', 'false_alarm')),
    resolution_note text CHECK (length(resolution_note) <= 4000),
    routed_to uuid REFERENCES organisations,
    route text NOT NULL DEFAULT 'responsible'
        CHECK (route IN ('responsible', 'backup', 'on_call', 'out_of_hours')),
    escalation_level smallint NOT NULL DEFAULT 0,
    escalate_at timestamptz
);
CREATE INDEX alert_episodes_unresolved ON alert_episodes (patient_id, problem)
    WHERE state <> 'resolved';
CREATE INDEX alert_episodes_escalation_due ON alert_episodes (escalate_at) WHERE state = 'open';

ALTER TABLE alerts ADD COLUMN episode_id bigint REFERENCES alert_episodes ON DELETE CASCADE;
CREATE INDEX alerts_episode ON alerts (episode_id);

-- Every alert raised before episodes is an episode of its own, carrying its state and route.
ALTER TABLE alert_episodes ADD COLUMN migrated_alert bigint;
INSERT INTO alert_episodes (patient_id, problem, severity, state, migrated_alert,
                            first_measured_at, last_measured_at, created_at, updated_at, late,
                            assigned_to, acknowledged_by, acknowledged_at, resolved_by,
                            resolved_at, outcome, resolution_note, routed_to, route,
                            escalation_level, escalate_at)
SELECT patient_id, category, severity, state, id, first_measured_at, last_measured_at,
       created_at, updated_at, late, assigned_to, acknowledged_by, acknowledged_at, resolved_by,
       resolved_at, outcome, resolution_note, routed_to, route, escalation_level, escalate_at
  FROM alerts ORDER BY id;
UPDATE alerts a SET episode_id = e.id, escalate_at = NULL
  FROM alert_episodes e WHERE e.migrated_alert = a.id;
ALTER TABLE alerts ALTER COLUMN episode_id SET NOT NULL;
ALTER TABLE alert_episodes DROP COLUMN migrated_alert;

ALTER TABLE notifications ADD COLUMN episode_id bigint REFERENCES alert_episodes ON DELETE CASCADE;
UPDATE notifications n SET episode_id = a.episode_id FROM alerts a WHERE a.id = n.alert_id;
CREATE INDEX notifications_episode ON notifications (episode_id);

-- The care plan's prescribed SpO2 target (88-92 % means NEWS2 scale 2 unless the clinician
-- chose otherwise) and its per-patient rule parameters (core/rule_parameters.py: name ->
-- number; a name not given is the rule's default). Both are versioned with the plan.
ALTER TABLE care_plans
    ADD COLUMN spo2_target_low smallint CHECK (spo2_target_low BETWEEN 50 AND 100),
    ADD COLUMN spo2_target_high smallint CHECK (spo2_target_high BETWEEN 50 AND 100),
    ADD COLUMN rule_parameters jsonb NOT NULL DEFAULT '{}'
        CHECK (jsonb_typeof(rule_parameters) = 'object'),
    ADD CONSTRAINT spo2_target_ordered CHECK (spo2_target_low < spo2_target_high);

-- A unit's technical contacts: where a notification that could not be delivered is reported,
-- on a channel other than the one that failed (alerts/dispatch.py).
CREATE TABLE technical_contacts (
    organisation_id uuid NOT NULL REFERENCES organisations ON DELETE CASCADE,
    channel text NOT NULL CHECK (channel IN ('email', 'webhook', 'apprise')),
    address text NOT NULL CHECK (length(address) BETWEEN 1 AND 2000),
    PRIMARY KEY (organisation_id, channel, address)
);
