"""Composition root: wires the components into the `heimvakt` command and one ASGI app."""
