"""The conformance suite covers every test of the upstream files it ports.

Each ported module names its upstream file (`UPSTREAM`) and the tests that
cannot apply (`NOT_APPLICABLE`, with the reason). For every `Test...`
function of that file at the pinned version, the module must have the
matching `test_...` function (`TestSequencerTxnSequenceCases` is
`test_sequencer_txn_sequence_cases`) or list it as not applicable. A new
upstream test, or a renamed one, fails here until it is ported or explained.
"""

from __future__ import annotations

import importlib
import re
from pathlib import Path
from types import ModuleType

import pytest

from tests import upstream
from tests.upstream import upstream_file

PORTED = [
    "test_label_extensions",
    "test_journal_spec_extensions",
    "test_header_extensions",
    "test_route_extensions",
    "test_broker_spec_extensions",
    "test_endpoint",
    "test_shard_spec_extensions",
    "test_checkpoint_extensions",
    "test_uuid",
    "test_json_framing",
    "test_fixed_framing",
    "test_csv_framing",
    "test_sequencer",
    "test_fsm",
    "test_store_sqlite",
    "test_transaction",
]

_GO_TEST = re.compile(r"^func (?:\([^)]*\) )?(Test\w+)\(", re.MULTILINE)
# Words start at a capital after a lower case letter, and at the last
# capital of an acronym followed by a word ("IDMap"), but a plural acronym
# stays whole ("ACKsRecovered" is "acks_recovered").
_WORD = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])(?![A-Z]s(?:[A-Z]|$))")


def snake(go_name: str) -> str:
    """`TestUUIDClock` -> `test_uuid_clock`."""
    return "test_" + _WORD.sub("_", go_name.removeprefix("Test")).lower()


def test_snake_case_of_go_test_names() -> None:
    assert snake("TestUUIDClock") == "test_uuid_clock"
    assert snake("TestProducerIDMapRegression") == "test_producer_id_map_regression"
    assert snake("TestFlagYAMLRoundTrip") == "test_flag_yaml_round_trip"
    assert snake("TestJSONFrameable") == "test_json_frameable"
    assert snake("TestRunTxnsACKsRecoveredCheckpoint") == "test_run_txns_acks_recovered_checkpoint"
    assert snake("TestDuplicateACKs") == "test_duplicate_acks"
    assert snake("TestIDSet") == "test_id_set"


def _module(name: str) -> ModuleType:
    return importlib.import_module(f"tests.conformance.{name}")


@pytest.mark.parametrize("name", PORTED)
def test_every_upstream_test_is_ported_or_explained(name: str) -> None:
    module = _module(name)
    assert module.__doc__ and module.__doc__.startswith(f"Upstream: {module.UPSTREAM}")
    go_tests = _GO_TEST.findall(upstream_file(module.UPSTREAM).read_text())
    assert go_tests, f"no Test functions found in {module.UPSTREAM}"
    not_applicable: dict[str, str] = module.NOT_APPLICABLE
    for go_name in not_applicable:
        assert go_name in go_tests, f"{name}: {go_name} is not an upstream test"
        assert not_applicable[go_name], f"{name}: {go_name} needs a reason"
        assert go_name.removeprefix("Test") in module.__doc__, f"docstring omits {go_name}"
    missing = [
        go_name
        for go_name in go_tests
        if go_name not in not_applicable and not callable(getattr(module, snake(go_name), None))
    ]
    assert missing == [], f"{module.UPSTREAM}: not ported: {missing}"


def test_a_missing_module_source_skips_or_fails_under_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Without the pinned source the suite cannot run: it says how to get it,
    and under CI it fails rather than passing vacuously."""
    monkeypatch.setattr(upstream, "_candidates", lambda relative: [tmp_path / relative])
    assert upstream.find_module_root() is None
    command = "go mod download go.gazette.dev/core@v0.103.0"
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=re.escape(command)):
        upstream.module_root()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=re.escape(command)):
        upstream.module_root()
