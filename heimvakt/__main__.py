"""`python -m heimvakt` is the `heimvakt` command."""

from heimvakt.cli import app

app(prog_name="heimvakt")
