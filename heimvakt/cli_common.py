"""What the `heimvakt` command's groups share: settings that refuse clearly, secret files."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import ValidationError

from core.settings import Settings

SecretOutput = Annotated[
    Path | None,
    typer.Option(
        "--output",
        "-o",
        metavar="PATH",
        show_default=False,
        help="Write the JSON to this file (mode 600). Default: standard output.",
    ),
]
"""Where a command writes a file with secrets in it (password hashes)."""


def settings_or_exit(**overrides: Any) -> Settings:
    """The settings (with `overrides` for Settings' fields, which checks them), or a one-line
    reason and exit status 2."""
    try:
        return Settings(**{k: v for k, v in overrides.items() if v is not None})
    except ValidationError as error:
        reasons = "; ".join(e["msg"].removeprefix("Value error, ") for e in error.errors())
        typer.echo(f"Refusing to start: {reasons}", err=True)
        raise typer.Exit(2) from error


def write_private(path: Path, text: str) -> None:
    """Write a file only its owner may read (mode 600): it holds password hashes or secrets."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as file:
        file.write(text)


def emit_broker_config(config: dict[str, Any], output: Path | None) -> None:
    """Mosquitto's dynamic-security JSON to standard output, or to a private file."""
    text = json.dumps(config, indent=2) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    write_private(output, text)
    typer.echo(f"{output}: {len(config['clients'])} logins", err=True)
