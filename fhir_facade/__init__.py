"""HL7 FHIR R4 facade over the same data (built in a later issue)."""
