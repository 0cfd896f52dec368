"""A gateway's ``transaction`` or ``batch`` Bundle of Observations, through the ingest.

Each entry is decoded by the ingest's FHIR decoder (ingest/fhir_observation.py) as a one-entry
Bundle, so an Observation gets the message id it would get in any Bundle (its identifier, id
or fullUrl, with the device and time): the whole Bundle is then one message to the ingest,
rate-limited, stored, deduplicated, quarantined and evaluated by the rules exactly as an MQTT
or HTTP message is (`ingest.store.store_message`). Posting a Bundle twice stores its readings
once: the second answer says ``200 OK`` for each entry instead of ``201 Created``.

A ``transaction`` is all or nothing as far as the Observations themselves go: if any entry is
refused while decoding (an unknown code, no time, a value out of range), no reading is stored,
the refused entries go to quarantine as on every channel, and the answer is a 422
OperationOutcome naming them. Whether the device was assigned to a patient when a reading was
measured is only known while storing; such a reading is quarantined and named in the answer's
entry, and the Bundle's other readings are stored (docs/fhir.md).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import psycopg

from fhir_facade import resources
from fhir_facade.search import SearchError
from ingest.decoding import Candidate, Decoded, Envelope, as_json_bytes
from ingest.fhir_observation import decode_fhir
from ingest.limits import Limits, RateLimiter, limit_rate
from ingest.store import AfterStore, BatchOutcome, store_message

CHANNEL: Final = "http"
"""Quarantine and metrics name the transport: FHIR Bundles arrive over HTTP."""
KINDS: Final = frozenset({"transaction", "batch"})


@dataclass(frozen=True, slots=True)
class FhirIngest:
    """What the composition root gives the write route: the rules every stored reading goes
    through, the ingest's limits, and the per-device rate shared with HTTP ingest."""

    after_store: tuple[AfterStore, ...]
    limits: Limits
    limiter: RateLimiter


def entries(bundle: object) -> tuple[str, list[dict[str, Any]]]:
    """The Bundle's type and entries, if it is one the facade takes; SearchError otherwise."""
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise SearchError("invalid", "POST /fhir takes a Bundle")
    kind = bundle.get("type")
    if kind not in KINDS:
        raise SearchError("not-supported", "the Bundle's type must be transaction or batch")
    found = bundle.get("entry")
    if not isinstance(found, list) or not found:
        raise SearchError("invalid", "Bundle.entry: the Bundle has no entries")
    for index, entry in enumerate(found):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        request = entry.get("request") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or resource.get("resourceType") != "Observation":
            raise SearchError("not-supported", f"Bundle.entry[{index}]: only Observations")
        method = request.get("method") if isinstance(request, dict) else None
        if method != "POST":
            raise SearchError("not-supported", f"Bundle.entry[{index}].request.method: only POST")
    return kind, found


def process(
    conn: psycopg.Connection,
    ingest: FhirIngest,
    *,
    kind: str,
    found: list[dict[str, Any]],
    body: bytes,
    envelope: Envelope,
) -> tuple[int, dict[str, Any]]:
    """Decode, store and answer: the HTTP status and the response Bundle (or an
    OperationOutcome for a transaction refused whole)."""
    decoded_entries = [
        decode_fhir(
            as_json_bytes({"resourceType": "Bundle", "type": kind, "entry": [entry]}), envelope
        )
        for entry in found
    ]
    whole = Decoded(
        candidates=[c for d in decoded_entries for c in d.candidates],
        quarantined=[q for d in decoded_entries for q in d.quarantined],
    )
    whole = limit_rate(
        whole, limiter=ingest.limiter, limits=ingest.limits, envelope=envelope, payload=body
    )
    if not whole.candidates:
        _, _stored = store_message(
            conn, whole, channel=CHANNEL, sender=envelope.device_id, after_store=ingest.after_store
        )
        details = "; ".join(q.detail for q in whole.quarantined)
        return 422, resources.outcome("processing", f"nothing stored: {details}"[:2000])
    if kind == "transaction" and whole.quarantined:
        refused = Decoded(quarantined=whole.quarantined)
        store_message(conn, refused, channel=CHANNEL, sender=envelope.device_id, after_store=())
        details = "; ".join(
            f"Bundle.entry[{i}]: {q.detail}"
            for i, d in enumerate(decoded_entries)
            for q in d.quarantined
        )
        return 422, resources.outcome("processing", f"transaction refused: {details}"[:2000])
    whole, outcome = store_message(
        conn, whole, channel=CHANNEL, sender=envelope.device_id, after_store=ingest.after_store
    )
    answers = _answers(decoded_entries, outcome, stored_any=bool(whole.candidates))
    return 200, {
        "resourceType": "Bundle",
        "type": f"{kind}-response",
        "entry": [{"response": answer} for answer in answers],
    }


_Key = tuple[str, str, datetime]


def _answers(
    decoded_entries: list[Decoded], outcome: BatchOutcome, *, stored_any: bool
) -> list[dict[str, Any]]:
    """Each entry's response: 201 when a reading of it was stored now, 200 when all were
    stored before (a repeat), 422 with an OperationOutcome when it was refused."""
    stored = {(r.device_id, r.code, r.measured_at) for r in outcome.stored}
    refused: defaultdict[_Key, list[str]] = defaultdict(list)
    for row in outcome.refused:
        refused[(row.device_id, row.code, row.measured_at)].append(f"{row.reason}: {row.detail}")
    answers = []
    for decoded in decoded_entries:
        problems = [f"{q.reason}: {q.detail}" for q in decoded.quarantined]
        if not stored_any:
            problems.append("storage_error: the database refused the readings")
        problems += [p for c in decoded.candidates for p in refused.get(_key(c), [])]
        if problems:
            answers.append(
                {
                    "status": "422 Unprocessable Entity",
                    "outcome": resources.outcome("processing", "; ".join(problems)[:2000]),
                }
            )
            continue
        new = [c for c in decoded.candidates if _key(c) in stored]
        answer: dict[str, Any] = {"status": "201 Created" if new else "200 OK"}
        if decoded.candidates:
            first = decoded.candidates[0]
            code = resources.observation_code(first.code)
            if code is not None:
                key = resources.ObservationKey(
                    resources.device_resource_id(first.device_id), code, first.measured_at
                )
                answer["location"] = f"Observation/{key.id}"
        answers.append(answer)
    return answers


def _key(candidate: Candidate) -> _Key:
    return (candidate.device_id, candidate.code, candidate.measured_at)
