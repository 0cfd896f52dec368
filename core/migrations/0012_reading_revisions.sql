-- Which transactions last changed what the rule engine knows about each patient: the readings
-- (written by ingest/ through core/readings.py), and through the triggers below the limits,
-- the plan, the conditions and the questionnaire answers.
--
-- A worker keeps each patient's recent readings and profile in memory (alerts/state.py) and
-- trusts its copy only while the transaction that last updated it is still in `claims`, the
-- last 8 ingest transactions that stored readings for the patient, oldest first. The claims
-- after it are other workers' batches: the copy catches up by reading the readings they
-- stored, measured between their `firsts` and `lasts`. A rolled-back batch never appears, and
-- the triggers empty the chain, so those copies are loaded anew.
CREATE TABLE reading_revisions (
    patient_id uuid PRIMARY KEY REFERENCES patients ON DELETE CASCADE,
    claims bigint[] NOT NULL,
    firsts timestamptz[] NOT NULL,
    lasts timestamptz[] NOT NULL
);

-- Only an existing row is emptied: a patient without one has no copy anywhere (a copy is
-- made after its row is written), and an erasure may already have removed it.
CREATE FUNCTION reading_revisions_touch() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    patient uuid;
BEGIN
    IF TG_TABLE_NAME = 'patients' THEN
        patient := NEW.id;
    ELSIF TG_OP = 'DELETE' THEN
        patient := OLD.patient_id;
    ELSE
        patient := NEW.patient_id;
    END IF;
    UPDATE reading_revisions SET claims = '{}', firsts = '{}', lasts = '{}'
     WHERE patient_id = patient;
    RETURN NULL;
END
$$;

CREATE TRIGGER rule_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON patient_thresholds
    FOR EACH ROW EXECUTE FUNCTION reading_revisions_touch();
CREATE TRIGGER rule_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON care_plans
    FOR EACH ROW EXECUTE FUNCTION reading_revisions_touch();
CREATE TRIGGER rule_inputs_changed AFTER INSERT OR UPDATE OR DELETE ON questionnaire_responses
    FOR EACH ROW EXECUTE FUNCTION reading_revisions_touch();
CREATE TRIGGER rule_inputs_changed AFTER UPDATE OF conditions ON patients
    FOR EACH ROW EXECUTE FUNCTION reading_revisions_touch();
