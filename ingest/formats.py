"""The payload formats Heimvakt accepts, as data: topic kind, HTTP content types, decoder."""

from __future__ import annotations

from dataclasses import dataclass

from ingest.decoding import Decoder
from ingest.fhir_observation import decode_fhir
from ingest.native import decode_native
from ingest.senml import decode_senml


@dataclass(frozen=True, slots=True)
class PayloadFormat:
    name: str
    topic_kind: str
    """The last topic level: heimvakt/v1/devices/{device_id}/{topic_kind}."""
    content_types: tuple[str, ...]
    """Media types accepted for the same payload over HTTP."""
    decode: Decoder


FORMATS: tuple[PayloadFormat, ...] = (
    PayloadFormat("native", "readings", ("application/json",), decode_native),
    PayloadFormat("senml", "senml", ("application/senml+json",), decode_senml),
    # application/json+fhir is the DSTU2 spelling of the media type, still sent by older clients.
    PayloadFormat("fhir", "fhir", ("application/fhir+json", "application/json+fhir"), decode_fhir),
)


_BY_TOPIC_KIND: dict[str, PayloadFormat] = {f.topic_kind: f for f in FORMATS}


def for_topic_kind(kind: str) -> PayloadFormat | None:
    return _BY_TOPIC_KIND.get(kind)


def for_content_type(content_type: str) -> PayloadFormat | None:
    """The format for a Content-Type header value; parameters such as charset are ignored."""
    media_type = content_type.split(";", 1)[0].strip().lower()
    return next((f for f in FORMATS if media_type in f.content_types), None)
