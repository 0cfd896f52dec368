-- Tenancy of care-team membership and emergency access (owned by care/access.py and
-- care/people.py).

-- A care-team membership is held on behalf of one organisation: the member's employer when
-- they joined. It grants access only while that employment is current, so ending someone's
-- employment ends their access through every membership it carried.
ALTER TABLE care_team_members ADD COLUMN organisation_id uuid REFERENCES organisations;

-- Existing memberships belong to the employment current when they began, else the member's
-- earliest employment. A member who never had one keeps a null, which grants nothing.
UPDATE care_team_members tm
   SET organisation_id = (
        SELECT e.organisation_id FROM staff_memberships e
         WHERE e.staff_id = tm.staff_id
         ORDER BY (e.valid_from <= tm.valid_from
                   AND (e.valid_to IS NULL OR e.valid_to > tm.valid_from)) DESC,
                  e.valid_from, e.id
         LIMIT 1);

-- Every new membership names its organisation; older rows without one are left as history.
ALTER TABLE care_team_members
    ADD CONSTRAINT care_team_members_organisation CHECK (organisation_id IS NOT NULL) NOT VALID;

-- Emergency access ("break the glass"): a staff member outside the patient's care teams reads
-- the record for a limited time, with a reason the patient sees in their access log and a
-- coordinator reviews. Only while the employment it was opened for is current.
CREATE TABLE emergency_access (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    patient_id uuid NOT NULL REFERENCES patients ON DELETE CASCADE,
    staff_id uuid NOT NULL REFERENCES staff,
    organisation_id uuid NOT NULL REFERENCES organisations,
    reason text NOT NULL CHECK (length(reason) BETWEEN 1 AND 2000),
    valid_from timestamptz NOT NULL,
    valid_to timestamptz NOT NULL CHECK (valid_to > valid_from)
);
CREATE INDEX emergency_access_staff ON emergency_access (staff_id, patient_id, valid_to);
CREATE INDEX emergency_access_patient ON emergency_access (patient_id);
CREATE INDEX emergency_access_from ON emergency_access (valid_from);
