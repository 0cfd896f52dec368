-- A nurse decides about readings quarantined as `device_reassigned` (measured during an earlier
-- assignment of a device that another patient holds now): accepted into the record of the
-- patient who held the device then, or rejected. Who decided, when and why stays on the row.
ALTER TABLE quarantine
    ADD COLUMN decision text CHECK (decision IN ('accepted', 'rejected')),
    ADD COLUMN decided_by uuid,
    ADD COLUMN decided_at timestamptz,
    ADD COLUMN decision_note text,
    ADD CONSTRAINT quarantine_decision_complete CHECK (
        (decision IS NULL) = (decided_at IS NULL) AND (decision IS NULL) = (decision_note IS NULL)
    );

CREATE INDEX quarantine_awaiting_review ON quarantine (device_id, received_at)
    WHERE reason = 'device_reassigned' AND decision IS NULL;
