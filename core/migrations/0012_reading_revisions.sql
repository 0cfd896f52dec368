-- Which transaction last changed what the rule engine knows about each patient: the readings
-- (written by ingest/ through core/readings.py), and through the triggers below the limits,
-- the plan, the conditions and the questionnaire answers. A worker that keeps a patient's
-- recent readings and profile in memory (alerts/state.py) trusts its copy only while this
-- still names the transaction that last updated the copy: any other writer, or a rolled-back
-- one, makes it load the patient again.
-- `previous` is what an ingest batch's UPDATE replaced: SET expressions see the row version
-- it actually updates, so RETURNING previous is right even after waiting for another writer.
CREATE TABLE reading_revisions (
    patient_id uuid PRIMARY KEY REFERENCES patients ON DELETE CASCADE,
    revision bigint NOT NULL,
    previous bigint
);

-- Only an existing row is moved on: a patient without one has no copy anywhere (a copy is
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
    UPDATE reading_revisions SET revision = pg_current_xact_id()::text::bigint
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
