"""The `broker` and `journals` command groups, run with click's CliRunner against
a journal server process (`python -m gazette_trio.broker.server`)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from gazette_trio.broker.cli import broker, journals
from tests.services import _wait_port

from .conftest import ServerProcess

SPECS = """
name: examples/
replication: 1
labels:
- name: content-type
  value: text/plain
fragment:
  length: 1048576
  compression_codec: NONE
  refresh_interval: 1m0s
children:
- name: examples/greetings
- name: examples/other
  labels:
  - name: topic
    value: other
"""


@pytest.fixture
def endpoint(tmp_path: Path) -> Iterator[str]:
    server = ServerProcess(tmp_path / "data")
    proc = server.proc = server._spawn()
    try:
        _wait_port(server.port, 30, proc)
        yield server.endpoint
    finally:
        server.stop()


def run(endpoint: str, *args: str, input: str | bytes | None = None) -> Result:
    return CliRunner().invoke(
        journals, ["-e", endpoint, *args], input=input, catch_exceptions=False
    )


def test_apply_list_append_read_and_fragments(endpoint: str, tmp_path: Path) -> None:
    specs = tmp_path / "journals.yaml"
    specs.write_text(SPECS)
    applied = run(endpoint, "apply", "-f", str(specs))
    assert applied.exit_code == 0, applied.output
    assert "applied 2 change(s) at revision 2" in applied.output

    table = run(endpoint, "list")
    assert table.exit_code == 0
    assert "examples/greetings" in table.output and "examples/other" in table.output

    # JSON is the ListResponse in protobuf's JSON mapping, as `shards list`'s.
    listed = json.loads(run(endpoint, "list", "-l", "topic=other", "--format", "json").output)
    assert [j["spec"]["name"] for j in listed["journals"]] == ["examples/other"]
    assert listed["journals"][0]["mod_revision"] == "2"
    assert listed["journals"][0]["spec"]["fragment"]["refresh_interval"] == "60s"

    appended = run(endpoint, "append", "examples/greetings", "-d", "hello\n", "--format", "json")
    assert appended.exit_code == 0, appended.output
    commit = json.loads(appended.output)
    assert (commit["begin"], commit["end"]) == (0, 6)
    assert run(endpoint, "append", "examples/greetings", input=b"world\n").exit_code == 0

    assert run(endpoint, "read", "examples/greetings").stdout_bytes == b"hello\nworld\n"
    assert run(endpoint, "read", "examples/greetings", "--offset", "6").stdout_bytes == b"world\n"

    fragments = json.loads(run(endpoint, "fragments", "examples/greetings", "-o", "json").output)
    assert [(f["begin"], f["end"]) for f in fragments] == [(0, 12)]


def test_suspend_and_reset_head(endpoint: str, tmp_path: Path) -> None:
    specs = tmp_path / "journals.yaml"
    specs.write_text(SPECS)
    assert run(endpoint, "apply", "-f", str(specs)).exit_code == 0
    assert run(endpoint, "append", "examples/greetings", "-d", "hi\n").exit_code == 0

    # The empty journal suspends fully; the one with content only with --force.
    suspended = run(endpoint, "suspend", "-l", "prefix=examples/")
    assert suspended.exit_code == 0, suspended.output
    assert "examples/other: suspended" in suspended.output
    assert "examples/greetings: not suspended" in suspended.output
    forced = run(endpoint, "suspend", "-l", "name=examples/greetings", "--force")
    assert "examples/greetings: suspended" in forced.output
    tree = yaml.safe_load(run(endpoint, "list", "--format", "yaml").output)
    levels = {c["name"]: c.get("suspend", {}).get("level") for c in tree["children"]}
    assert levels == {"examples/greetings": "PARTIAL", "examples/other": "FULL"}

    # reset-head leaves suspension alone and skips fully suspended journals.
    reset = run(endpoint, "reset-head", "-l", "prefix=examples/")
    assert reset.exit_code == 0, reset.output
    assert reset.output.strip() == "examples/greetings: write head reset at 3"
    tree = yaml.safe_load(run(endpoint, "list", "--format", "yaml").output)
    assert {c["name"]: c["suspend"]["level"] for c in tree["children"]} == levels

    # An append resumes a journal where it left off.
    assert run(endpoint, "append", "examples/other", "-d", "x").exit_code == 0
    assert run(endpoint, "read", "examples/other").stdout_bytes == b"x"


def test_yaml_listing_applies_back_as_an_update(endpoint: str, tmp_path: Path) -> None:
    specs = tmp_path / "journals.yaml"
    specs.write_text(SPECS)
    assert run(endpoint, "apply", "-f", str(specs)).exit_code == 0
    listing = run(endpoint, "list", "--format", "yaml").output
    tree = yaml.safe_load(listing)
    assert tree["name"] == "examples/" and len(tree["children"]) == 2
    assert {c["revision"] for c in tree["children"]} == {2}
    again = run(endpoint, "apply", input=listing)  # from stdin, with the listed revisions
    assert again.exit_code == 0, again.output
    assert "at revision 3" in again.output
    stale = run(endpoint, "apply", input=listing)  # the same revisions again: now stale
    assert stale.exit_code == 1
    assert "ETCD_TRANSACTION_FAILED" in stale.output


def test_errors_are_reported_clearly_with_a_failing_exit_code(
    endpoint: str, tmp_path: Path
) -> None:
    missing = run(endpoint, "append", "no/such/journal", "-d", "x")
    assert missing.exit_code == 1
    assert "journal 'no/such/journal': JOURNAL_NOT_FOUND" in missing.output

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "name: a/journal\nreplication: 1\nfragment: {length: 10, refresh_interval: 1m}\n"
    )
    invalid = run(endpoint, "apply", "-f", str(bad))
    assert invalid.exit_code == 1
    assert "Fragment: invalid Length (10; expected 1024 <= length" in invalid.output

    bad.write_text("name: a/journal\nreplicas: 1\n")
    unknown = run(endpoint, "apply", "-f", str(bad))
    assert unknown.exit_code == 1 and "unknown field(s) replicas" in unknown.output

    selector = run(endpoint, "list", "-l", "a in (")
    assert selector.exit_code == 2 and "could not match" in selector.output

    unreachable = CliRunner().invoke(journals, ["-e", "127.0.0.1:1", "list"])
    assert unreachable.exit_code == 1 and "UNAVAILABLE" in unreachable.output
    assert "127.0.0.1:1: " in unreachable.output  # the error names the endpoint tried


def test_the_endpoint_comes_from_the_command_a_member_config_or_the_environment(
    endpoint: str, tmp_path: Path
) -> None:
    specs = tmp_path / "journals.yaml"
    specs.write_text(SPECS)
    assert run(endpoint, "apply", "-f", str(specs)).exit_code == 0
    names = ["examples/greetings", "examples/other"]

    def listed(args: list[str], env: dict[str, str] | None = None) -> list[str]:
        result = CliRunner().invoke(journals, args, env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return [j["spec"]["name"] for j in json.loads(result.output)["journals"]]

    # After the command's name, as every gazette-trio command takes it ...
    assert listed(["list", "-e", endpoint, "-o", "json"]) == names
    # ... from a member's config: its [broker], or the member itself ...
    port = endpoint.rsplit(":", 1)[1]
    member = tmp_path / "member.toml"
    member.write_text(f'[application]\nmodule = "x:Y"\nname = "g"\n[member]\nport = {port}\n')
    assert listed(["list", "-c", str(member), "-o", "json"]) == names
    remote = tmp_path / "remote.toml"
    remote.write_text(
        '[application]\nmodule = "x:Y"\nname = "g"\n[etcd]\nendpoints = ["http://127.0.0.1:2379"]\n'
        f'[broker]\nendpoint = "http://{endpoint}"\n'
    )
    assert listed(["list", "-c", str(remote), "-o", "json"]) == names
    # ... or the environment; an explicit -e wins over both.
    assert listed(["list", "-o", "json"], env={"GAZETTE_BROKER_ENDPOINT": endpoint}) == names
    wrong = {"GAZETTE_BROKER_ENDPOINT": "127.0.0.1:1"}
    assert listed(["list", "-e", endpoint, "-o", "json"], env=wrong) == names


def test_every_command_has_help_with_examples() -> None:
    for group, commands in (
        (broker, ["serve"]),
        (journals, ["list", "apply", "append", "read", "fragments", "suspend", "reset-head"]),
    ):
        for command in commands:
            result = CliRunner().invoke(group, [command, "--help"])
            assert result.exit_code == 0
            assert "Examples:" in result.output or "Example" in result.output, command


def test_serve_needs_a_data_dir_or_memory() -> None:
    result = CliRunner().invoke(broker, ["serve"])
    assert result.exit_code == 2 and "--data-dir" in result.output
