"""HTTP ingest, for gateways that cannot speak MQTT: the same formats, checks and store.

One request is one message. It goes through exactly what an MQTT message goes through (the
format's decoder, `store_batch` with its dedupe, quarantine and ``after_store`` hooks), with
channel ``http``; only the transport differs. The device is named by the path and proven by a
per-device bearer token (devices/tokens.py), as the broker's ACL proves it for MQTT.

Unlike MQTT, the sender gets an answer, so input we refuse before it is a message (no or a bad
token, an oversized body, a media type we cannot read) is answered with an error and not
quarantined; everything that reaches a decoder is stored or quarantined, and the answer says
which, reading by reading.
"""

from __future__ import annotations

import logging
import re
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Annotated, Any, Literal
from uuid import UUID

import psycopg
from fastapi import APIRouter, Request, Security
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from psycopg_pool import ConnectionPool
from pydantic import BaseModel, Field

from core.api import API_PREFIX
from core.clock import Clock
from core.problems import PROBLEM_JSON, Problem, problem
from devices.tokens import device_for_token, token_prefix
from ingest import formats, metrics
from ingest.decoding import Candidate, Decoded, Envelope
from ingest.formats import PayloadFormat
from ingest.limits import Limits, RateLimiter, limit_rate
from ingest.quarantine import QuarantineEntry
from ingest.store import AfterStore, BatchOutcome, Refused, store_message

log = logging.getLogger(__name__)

CHANNEL = "http"
READINGS_PATH = f"{API_PREFIX}/devices/{{device_id}}/readings"
RETRY_AFTER_SECONDS = 5
"""Told to a gateway when the database is away: it keeps the message and tries again."""

_B64TOKEN = re.compile(r"^[A-Za-z0-9._~+/-]+=*$")
"""RFC 6750's token syntax: anything else in the header is a malformed request, not a guess."""
_MAX_TOKEN_CHARS = 512
_CHALLENGE = 'Bearer realm="heimvakt"'
_BEARER = HTTPBearer(
    auto_error=False,  # so the answer is ours: problem+json with a WWW-Authenticate challenge
    scheme_name="DeviceToken",
    description="A per-device token (hv_…), issued by an administrator for one device.",
)


class ReadingOutcome(BaseModel):
    """What became of one reading. Readings refused while decoding carry only reason and detail
    (the detail names the reading's place in the message), since they may have no valid code."""

    outcome: Literal["stored", "duplicate", "quarantined"]
    code: str | None = Field(default=None, description="LOINC code, in catalog terms")
    measured_at: datetime | None = Field(default=None, description="In UTC")
    value: float | None = Field(default=None, description="In the catalog's canonical unit")
    unit: str | None = None
    reason: str | None = Field(default=None, description="The quarantine reason (docs/mqtt.md)")
    detail: str | None = None


class IngestResult(BaseModel):
    """The message was committed: every reading is stored, a duplicate, or in quarantine."""

    msg_id: UUID | None
    received_at: datetime
    stored: int
    duplicates: int
    quarantined: int
    """Quarantine rows written: refused readings, or one for a refused message."""
    readings: list[ReadingOutcome]


class MessageRefused(Problem):
    """Nothing in the message could become a reading; what was refused is in quarantine."""

    reason: str
    msg_id: UUID | None
    quarantined: int
    readings: list[ReadingOutcome]


@dataclass(frozen=True, slots=True)
class _Processed:
    decoded: Decoded
    outcome: BatchOutcome
    refused_whole: bool
    """The decoder found no acceptable reading at all: the sender's message is at fault."""


class _RefusedRequestError(Exception):
    """A request answered with a problem before anything was stored."""

    def __init__(self, response: JSONResponse) -> None:
        super().__init__(response.status_code)
        self.response = response


def ingest_router(
    *,
    pool: ConnectionPool,
    clock: Clock,
    after_store: Sequence[AfterStore],
    limits: Limits,
    limiter: RateLimiter | None = None,
) -> APIRouter:
    """The HTTP ingest endpoint; the formats accepted are those registered in ingest/formats.py.
    `limiter`: the per-device rate, shared with the other routes a device sends to (FHIR)."""
    router = APIRouter(tags=["ingest"])
    hooks = tuple(after_store)
    if limiter is None:
        limiter = RateLimiter(rate=limits.device_rate, burst=limits.device_burst)

    def authenticate(token: str, device_id: str) -> bool:
        with pool.connection() as conn:
            return device_for_token(conn, token=token, device_id=device_id)

    def process(body: bytes, payload_format: PayloadFormat, envelope: Envelope) -> _Processed:
        """Decode and store in one worker thread: both block, and the event loop must not."""
        decoded = limit_rate(
            payload_format.decode(body, envelope),
            limiter=limiter,
            limits=limits,
            envelope=envelope,
            payload=body,
        )
        refused_whole = not decoded.candidates
        with pool.connection() as conn:
            decoded, outcome = store_message(
                conn, decoded, channel=CHANNEL, sender=envelope.device_id, after_store=hooks
            )
        return _Processed(decoded, outcome, refused_whole)

    @router.post(
        READINGS_PATH,
        response_model=IngestResult,
        summary="Send readings from a gateway that cannot use MQTT",
        responses=_error_responses(),
        openapi_extra={"requestBody": _request_body()},
    )
    async def post_readings(
        device_id: str,
        request: Request,
        credentials: Annotated[HTTPAuthorizationCredentials | None, Security(_BEARER)],
    ) -> IngestResult | JSONResponse:
        """One message in any registered payload format, chosen by Content-Type.

        The answer comes after the message is committed; sending it again is harmless (each
        reading is stored once per device, code and time), so a gateway retries on 503 or a
        lost answer and forgets the message on any other answer.
        """
        started = time.perf_counter()
        status = 500  # what the client sees if anything below raises
        try:
            answer = await receive(device_id, request, credentials)
            status = answer.status_code if isinstance(answer, JSONResponse) else 200
            return answer
        finally:
            metrics.HTTP_REQUESTS.labels(status=str(status)).inc()
            metrics.HTTP_REQUEST_SECONDS.observe(time.perf_counter() - started)

    async def receive(
        device_id: str, request: Request, credentials: HTTPAuthorizationCredentials | None
    ) -> IngestResult | JSONResponse:
        try:
            token = _bearer_token(credentials)
            payload_format = _payload_format(request)
            _check_declared_length(request, limits.max_payload_bytes)
            if not await run_in_threadpool(authenticate, token, device_id):
                log.info(
                    "refused a token (%r) for device %r over HTTP", token_prefix(token), device_id
                )
                raise _RefusedRequestError(problem(403, "the token is not valid for this device"))
            body = await _read_body(request, limits.max_payload_bytes)
            envelope = Envelope(
                channel=CHANNEL,
                topic=None,
                device_id=device_id,
                received_at=clock.now(),
                max_future=limits.max_future,
                max_age=limits.max_age,
                max_readings=limits.max_readings,
            )
            processed = await run_in_threadpool(process, body, payload_format, envelope)
            _count_readings(processed.outcome)
        except _RefusedRequestError as refused:
            return refused.response
        except psycopg.OperationalError as error:
            log.warning("HTTP ingest: database unavailable (%s)", error)
            return problem(
                503,
                "the database is unavailable; send the message again later",
                headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
            )
        return _answer(processed, envelope)

    return router


def _count_readings(outcome: BatchOutcome) -> None:
    counts = {
        "stored": len(outcome.stored),
        "duplicate": outcome.duplicates,
        "quarantined": sum(outcome.quarantined.values()),
    }
    for name, count in counts.items():
        metrics.HTTP_READINGS.labels(outcome=name).inc(count)


def _bearer_token(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None:
        raise _RefusedRequestError(
            problem(
                401,
                "send the device's token as 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": _CHALLENGE},
            )
        )
    token = credentials.credentials
    if len(token) > _MAX_TOKEN_CHARS or _B64TOKEN.match(token) is None:
        raise _RefusedRequestError(
            problem(
                401,
                "the Authorization header does not hold a well-formed bearer token",
                headers={"WWW-Authenticate": f'{_CHALLENGE}, error="invalid_request"'},
            )
        )
    return token


def _payload_format(request: Request) -> PayloadFormat:
    accepted = ", ".join(_content_types())
    encoding = request.headers.get("content-encoding", "identity").strip().lower()
    if encoding != "identity":
        raise _RefusedRequestError(
            problem(
                415,
                f"Content-Encoding {encoding!r} is not accepted; send the body as is",
                headers={"Accept-Encoding": "identity"},
            )
        )
    content_type = request.headers.get("content-type")
    payload_format = formats.for_content_type(content_type) if content_type else None
    if payload_format is None:
        raise _RefusedRequestError(
            problem(
                415,
                f"Content-Type {content_type!r} is not a payload format; accepted: {accepted}",
                headers={"Accept-Post": accepted},
            )
        )
    return payload_format


def _check_declared_length(request: Request, limit: int) -> None:
    """Refuse a body that says it is too large before a byte of it is read."""
    declared = request.headers.get("content-length")
    if declared is None:
        return
    if not (declared.isascii() and declared.isdigit()):
        raise _RefusedRequestError(problem(400, "Content-Length is not a number"))
    if int(declared) > limit:
        raise _RefusedRequestError(_too_large(limit))


async def _read_body(request: Request, limit: int) -> bytes:
    """The body, read only up to the limit whatever the headers said (chunked bodies have none)."""
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _RefusedRequestError(_too_large(limit))
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(limit: int) -> JSONResponse:
    return problem(413, f"the body is larger than {limit} bytes; send fewer readings per message")


def _answer(processed: _Processed, envelope: Envelope) -> IngestResult | JSONResponse:
    decoded, outcome = processed.decoded, processed.outcome
    readings = _reading_outcomes(decoded, outcome)
    entries: list[Candidate | QuarantineEntry] = [*decoded.candidates, *decoded.quarantined]
    msg_id = next((m.msg_id for m in entries if m.msg_id is not None), None)
    quarantined = sum(outcome.quarantined.values())
    if processed.refused_whole and decoded.quarantined:
        first = decoded.quarantined[0]
        body = MessageRefused(
            title=HTTPStatus(422).phrase,
            status=422,
            detail="; ".join(q.detail for q in decoded.quarantined)[:2000],
            reason=str(first.reason),
            msg_id=msg_id,
            quarantined=quarantined,
            readings=readings,
        )
        return JSONResponse(body.model_dump(mode="json"), status_code=422, media_type=PROBLEM_JSON)
    return IngestResult(
        msg_id=msg_id,
        received_at=envelope.received_at,
        stored=len(outcome.stored),
        duplicates=outcome.duplicates,
        quarantined=quarantined,
        readings=readings,
    )


def _reading_outcomes(decoded: Decoded, outcome: BatchOutcome) -> list[ReadingOutcome]:
    """Each candidate matched with what the store did to it, then what the decoder refused.

    A stored row is matched by device, code, time and value: two candidates for one instant
    (say ``spo2`` and ``59408-5``) are one stored row and one duplicate.
    """
    stored = {(r.device_id, r.code, r.measured_at): r.value for r in outcome.stored}
    refused: defaultdict[tuple[str, str, datetime], list[Refused]] = defaultdict(list)
    for row in outcome.refused:
        refused[(row.device_id, row.code, row.measured_at)].append(row)
    result = []
    for c in decoded.candidates:
        key = (c.device_id, c.code, c.measured_at)
        about: dict[str, Any] = {
            "code": c.code,
            "measured_at": c.measured_at.astimezone(UTC),
            "value": c.value,
            "unit": c.unit,
        }
        if refused[key]:
            row = refused[key].pop(0)
            result.append(
                ReadingOutcome(outcome="quarantined", reason=row.reason, detail=row.detail, **about)
            )
        elif key in stored and stored[key] == c.value:
            del stored[key]
            result.append(ReadingOutcome(outcome="stored", **about))
        else:
            result.append(ReadingOutcome(outcome="duplicate", **about))
    result.extend(
        ReadingOutcome(outcome="quarantined", reason=str(q.reason), detail=q.detail)
        for q in decoded.quarantined
    )
    return result


def _content_types() -> list[str]:
    """Read at each use, so a format added to the registry is accepted and documented."""
    return [t for f in formats.FORMATS for t in f.content_types]


def _request_body() -> dict[str, Any]:
    names = ", ".join(f"{f.name} ({', '.join(f.content_types)})" for f in formats.FORMATS)
    return {
        "required": True,
        "description": f"One message in a registered payload format: {names}. See docs/mqtt.md.",
        "content": {t: {"schema": {}} for t in _content_types()},
    }


def _error_responses() -> dict[int | str, dict[str, Any]]:
    problem_schema = Problem.model_json_schema()
    refused = MessageRefused.model_json_schema(ref_template="#/components/schemas/{model}")
    refused.pop("$defs", None)  # ReadingOutcome is a component already, through IngestResult
    why = {
        400: "The request headers are malformed.",
        401: "No bearer token, or a malformed one.",
        403: "The token is unknown, revoked or another device's (not told apart).",
        413: "The body is larger than the limit.",
        415: "The Content-Type is not a registered payload format.",
        422: "Nothing in the message could become a reading; it is quarantined.",
        503: "The database is unavailable; nothing was stored. Retry after Retry-After seconds.",
    }
    return {
        status: {
            "description": description,
            "content": {PROBLEM_JSON: {"schema": refused if status == 422 else problem_schema}},
        }
        for status, description in why.items()
    }
