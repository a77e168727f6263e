"""schemathesis over /openapi.json against a real stack (tests/fuzzing.py): every operation,
every check, a fixed seed. Zero failures: no 5xx, and every response as documented."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fuzzing import SESSION_ENDERS, Target, fuzz, fuzz_stack, summary

pytestmark = pytest.mark.db
MAX_EXAMPLES = 15


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    with fuzz_stack(tmp_path_factory.mktemp("fuzz")) as t:
        yield t


def test_schemathesis_finds_nothing(target: Target, tmp_path: Path) -> None:
    results = fuzz(target, tmp_path, max_examples=MAX_EXAMPLES)
    report = summary(results)
    print(report)
    first, last = results
    # Every operation of the document was exercised: all but the session enders first, then
    # those on their own.
    ops, enders = first.report["operations"], last.report["operations"]
    assert ops["tested"] + enders["tested"] == ops["total"], report
    assert enders["tested"] >= len(SESSION_ENDERS), report
    assert first.test_cases > 2000, report
    assert not [p for r in results for p in r.problems], report + "\n\n" + first.output[-20000:]
