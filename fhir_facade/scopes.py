"""SMART on FHIR scopes: what a token's scopes let a client read, on top of the person's rights.

A scope narrows, it never widens: the access check (care.access) decides which patients the
person may see, and a token that carries SMART scopes (`core.auth.Principal.smart_scopes`) may
then read only the resource types they name. Both syntaxes are read: SMART v1
(``user/Observation.read``, ``patient/*.*``) and v2 (``user/Observation.rs``, ``patient/*.cruds``).

- ``patient/…`` is for a patient's own token: Heimvakt has no launch context that would pick a
  patient for a clinician, so on a staff token these scopes grant nothing.
- ``user/…`` is what the person may see: staff and patients.
- ``system/…`` grants nothing here: Heimvakt has no system clients.
- A v2 scope with a query (``user/Observation.rs?category=…``) grants nothing: the facade does
  not narrow by it, so it must not be taken as the whole type.
"""

from __future__ import annotations

from typing import Final, Literal

from core.auth import Principal

Interaction = Literal["r", "s"]
"""Read (one resource by id) or search."""

_V1: Final = {"read": "rs", "*": "cruds", "write": "cud"}


def permits(principal: Principal, resource_type: str, interaction: Interaction) -> bool:
    """Whether the token's scopes let it `interaction` on `resource_type`; always, for a
    token without SMART scopes."""
    scopes = principal.smart_scopes
    if scopes is None:
        return True
    context = "patient/" if principal.kind == "patient" else None
    for scope in scopes:
        prefix, _, rest = scope.partition("/")
        if f"{prefix}/" not in ("user/", context) or "?" in rest:
            continue
        kind, _, permissions = rest.partition(".")
        if kind not in (resource_type, "*"):
            continue
        if interaction in _V1.get(permissions, permissions):
            return True
    return False
