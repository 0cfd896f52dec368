"""The suite itself: a run that leaves a process it started behind fails, and stops it."""

from __future__ import annotations

import os

import psutil
import pytest

pytest_plugins = ["pytester"]
pytestmark = pytest.mark.slow  # each test runs a pytest session of its own

LEAKING_TEST = """
import subprocess

def test_starts_a_server_and_forgets_it():
    process = subprocess.Popen(["sleep", "600"], start_new_session=True)
    with open("leaked.pid", "w") as pid_file:
        pid_file.write(str(process.pid))
"""


@pytest.fixture
def suite(
    pytester: pytest.Pytester, repo_root: object, monkeypatch: pytest.MonkeyPatch
) -> pytest.Pytester:
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(repo_root), os.environ.get("PYTHONPATH", "")])
    )
    pytester.makeconftest("from tests.conftest import pytest_configure, pytest_sessionfinish\n")
    return pytester


def test_a_run_that_leaves_a_process_running_fails_and_stops_it(suite: pytest.Pytester) -> None:
    suite.makepyfile(LEAKING_TEST)

    result = suite.runpytest_subprocess("-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*left running by the tests: pid * sleep 600*"])
    leaked = int((suite.path / "leaked.pid").read_text())
    assert not psutil.pid_exists(leaked) or psutil.Process(leaked).status() == "zombie"


def test_a_run_that_stops_what_it_started_passes(suite: pytest.Pytester) -> None:
    suite.makepyfile(
        LEAKING_TEST.replace("pid_file.write(str(process.pid))", "process.kill(); process.wait()")
    )

    result = suite.runpytest_subprocess("-p", "no:cacheprovider")

    assert result.ret == pytest.ExitCode.OK
