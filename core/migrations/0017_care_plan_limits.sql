-- The versioned care plan is the only source of a patient's limits. Before, limits could also
-- be set on their own (patient_thresholds, without a plan, a version or a reason), and the rule
-- engine read them whether or not a plan held them.
--
-- A patient who has limits but no plan gets one here, version 1, carrying exactly those limits
-- and no measurement schedule (so the rules see what they saw before: the same limits, no
-- missing-measurement alerts). The template follows the patient's conditions; the version and
-- each carried limit say where they came from.
INSERT INTO care_plans (patient_id, template, version, spo2_scale, self_management, updated_at,
                        updated_by)
SELECT p.id,
       CASE WHEN 'heart_failure' = ANY (p.conditions) AND NOT 'copd' = ANY (p.conditions)
            THEN 'heart_failure' ELSE 'copd' END,
       1, 1, '', max(t.updated_at), NULL
  FROM patients p
  JOIN patient_thresholds t ON t.patient_id = p.id
 WHERE NOT EXISTS (SELECT FROM care_plans c WHERE c.patient_id = p.id)
 GROUP BY p.id, p.conditions;

-- Every plan made by care/careplan.py has its version 1 recorded: one without is new here.
UPDATE patient_thresholds t
   SET reason = 'set before limits belonged to the care plan (migration 0017)'
 WHERE NOT EXISTS (SELECT FROM care_plan_versions v WHERE v.patient_id = t.patient_id);

INSERT INTO care_plan_versions (patient_id, version, changed_at, changed_by, reason, old, new)
SELECT c.patient_id, 1, c.updated_at, NULL,
       'created from the limits set before limits belonged to the care plan (migration 0017)',
       NULL,
       jsonb_build_object(
           'patient_id', c.patient_id::text,
           'template', c.template,
           'version', 1,
           'spo2_scale', c.spo2_scale,
           'self_management', c.self_management,
           'measurements', '[]'::jsonb,
           'thresholds', (
               SELECT jsonb_agg(jsonb_build_object(
                          'code', t.code, 'low', t.low, 'high', t.high, 'red_low', t.red_low,
                          'red_high', t.red_high, 'reason', t.reason) ORDER BY t.code)
                 FROM patient_thresholds t WHERE t.patient_id = c.patient_id),
           'updated_at', to_jsonb(c.updated_at),
           'updated_by', NULL)
  FROM care_plans c
 WHERE NOT EXISTS (SELECT FROM care_plan_versions v WHERE v.patient_id = c.patient_id);

-- The limits are rows of the plan now: they go with it, and none exists without it.
ALTER TABLE patient_thresholds RENAME TO care_plan_limits;
ALTER TABLE care_plan_limits RENAME CONSTRAINT patient_thresholds_pkey TO care_plan_limits_pkey;
ALTER TABLE care_plan_limits DROP CONSTRAINT patient_thresholds_patient_id_fkey;
ALTER TABLE care_plan_limits ADD CONSTRAINT care_plan_limits_patient_id_fkey
    FOREIGN KEY (patient_id) REFERENCES care_plans ON DELETE CASCADE;
COMMENT ON TABLE care_plan_limits IS
    'A care plan''s limits per measurement: yellow outside [low, high], red outside '
    '[red_low, red_high]; reason NULL is the template''s default (care/careplan.py)';
