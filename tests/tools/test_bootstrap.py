"""tools/bootstrap.py hands uv the indexes pip is configured with, so both install from the
same places (issue 17: `make demo` took 155 s with pip)."""

from __future__ import annotations

from tools.bootstrap import parse_pip_config, uv_options

# `pip config list` on a machine with /etc/pip.conf, /etc/xdg/pip/pip.conf and PIP_* variables.
LISTED = """\
:env:.cert='/etc/ssl/certs/ca-certificates.crt'
:env:.default-timeout='180'
:env:.find-links='/opt/wheels'
global.cert='/etc/ssl/certs/ca-certificates.crt'
global.constraint='/etc/xdg/pip/constraints.txt'
global.extra-index-url='file:///opt/pypi/simple file:///opt/pypi-more/simple'
global.find-links='/srv/other-wheels'
global.index-url='https://pypi.mirror.example/simple'
"""


def test_pip_configuration_becomes_uv_options_with_the_environment_winning() -> None:
    config = parse_pip_config(LISTED)
    assert config["find-links"] == "/opt/wheels"  # PIP_FIND_LINKS over the file, as pip does
    assert uv_options(config) == [
        "--index-strategy",
        "unsafe-best-match",
        "--index-url",
        "https://pypi.mirror.example/simple",
        "--extra-index-url",
        "file:///opt/pypi/simple",
        "--extra-index-url",
        "file:///opt/pypi-more/simple",
        "--find-links",
        "/opt/wheels",
        "--constraint",
        "/etc/xdg/pip/constraints.txt",
    ]


def test_no_pip_configuration_leaves_uv_on_its_defaults() -> None:
    assert uv_options(parse_pip_config("")) == ["--index-strategy", "unsafe-best-match"]
