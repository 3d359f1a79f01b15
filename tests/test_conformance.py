"""OPA's Rego conformance corpus, run through Council's host, held above a committed floor.

The corpus is read from ``../shared/conformance`` (never copied here); without it the test
is skipped. The floor in ``conformance_floor.json`` only ever moves up.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from council.conformance import format_summary, run_conformance

pytestmark = pytest.mark.conformance

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "conformance" / "opa" / "cases"
FLOOR_FILE = Path(__file__).with_name("conformance_floor.json")


@pytest.mark.skipif(not CORPUS.is_dir(), reason="conformance corpus not present")
def test_conformance_above_floor(opa_binary: Path) -> None:
    floor = json.loads(FLOOR_FILE.read_text())
    report = run_conformance(CORPUS)
    summary = "\n".join(format_summary(report))
    print(summary)
    failing = [f"{r.case_id} [{r.note}]: {r.detail}" for r in report.results if not r.wasm_pass]
    assert report.wasm_passed >= floor["wasm_harness_passed"], (
        f"{report.wasm_passed} passed, below the floor of {floor['wasm_harness_passed']}\n"
        + "\n".join(failing[:50])
    )
    assert report.reference_passed >= floor["reference_passed"]
