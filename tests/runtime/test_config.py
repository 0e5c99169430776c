"""The member's config.toml: schema, defaults, environment overrides and errors.

Promises: a valid file becomes typed settings with documented defaults;
`GAZETTE_TRIO_SECTION__KEY` variables override keys; every kind of mistake
(unknown key, wrong type, bad duration, missing required key, bad
`module:Class`) is a `ConfigError` naming the dotted key, the value and what
was expected, which a command turns into exit code 2 with the message on
stderr.
"""

from __future__ import annotations

import datetime
import re
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from gazette_trio.protocol import protocol as pb
from gazette_trio.runtime.config import (
    Config,
    ConfigError,
    load_config,
    load_config_or_exit,
    parse_config,
)

FULL = textwrap.dedent(
    """
    data_dir = "state"

    [application]
    module = "json:JSONDecoder"
    name = "word-count"
    [application.settings]
    stop_words = ["a", "the"]
    batch = 3

    [member]
    zone = "us-east-1a"
    suffix = "member-001"
    host = "0.0.0.0"
    port = 9000
    endpoint = "http://member-001.internal:9000"
    shard_limit = 16

    [etcd]
    endpoints = ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
    lease_ttl = "30s"
    prefix = "/gazette/consumers/wc"

    [broker]
    endpoint = "http://broker.internal:8080"

    [log]
    level = "debug"
    format = "json"

    [http]
    host = "0.0.0.0"
    port = 9090

    [journals]
    name = "examples/lines/"
    replication = 1
    fragment = { length = 1048576, compression_codec = "SNAPPY", refresh_interval = "30s" }
    children = [{ name = "examples/lines/part-000" }, { name = "examples/lines/part-001" }]

    [shards.common]
    max_txn_duration = "1s"
    recovery_log_prefix = "examples/recovery"
    hint_prefix = "/gazette/hints"

    [[shards.shards]]
    id = "count-000"
    sources = [{ journal = "examples/lines/part-000" }]

    [[shards.shards]]
    id = "count-001"
    sources = [{ journal = "examples/lines/part-001" }]
    """
)

MINIMAL = '[application]\nmodule = "word_count.app:WordCount"\n'


def test_a_full_config_becomes_typed_settings(tmp_path: Path) -> None:
    """Every section is read; relative paths resolve against the config's directory."""
    file = tmp_path / "config.toml"
    file.write_text(FULL)
    config = load_config(file, env={})
    assert config.application.group_name == "word-count"
    assert config.application.settings == {"stop_words": ["a", "the"], "batch": 3}
    assert config.member.zone == "us-east-1a"
    assert config.member.port == 9000
    assert config.member.shard_limit == 16
    assert config.member.advertised_endpoint() == "http://member-001.internal:9000"
    assert config.etcd is not None
    assert config.etcd.endpoints == ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
    assert config.etcd.lease_ttl == datetime.timedelta(seconds=30)
    assert config.group_prefix == "/gazette/consumers/wc"
    assert config.broker is not None and config.broker.endpoint == "http://broker.internal:8080"
    assert (config.log.level, config.log.format) == ("debug", "json")
    assert (config.http.enabled, config.http.host, config.http.port) == (True, "0.0.0.0", 9090)
    assert config.data_dir == (tmp_path / "state").resolve()
    journals = config.declared_journals()
    assert [j.name for j in journals] == ["examples/lines/part-000", "examples/lines/part-001"]
    assert journals[0].replication == 1
    assert journals[0].fragment is not None
    assert journals[0].fragment.compression_codec == pb.CompressionCodec.SNAPPY
    assert journals[1].fragment is not None
    assert journals[1].fragment.refresh_interval == datetime.timedelta(seconds=30)
    shards = config.declared_shards()
    assert [s.id for s in shards] == ["count-000", "count-001"]
    assert shards[1].max_txn_duration == datetime.timedelta(seconds=1)
    assert shards[1].hint_prefix == "/gazette/hints"
    assert config.application.load() is __import__("json").JSONDecoder


def test_a_minimal_config_runs_everything_embedded(tmp_path: Path) -> None:
    """Only the application is required; no etcd and no broker mean the embedded ones."""
    config = parse_config(MINIMAL, base_dir=tmp_path, env={})
    assert config.embedded_etcd and config.embedded_broker
    assert config.group_prefix == "/gazette/consumers/word-count"
    assert config.member.zone == "local"
    assert config.member.host == "127.0.0.1" and config.member.port == 8080
    assert config.member.advertised_endpoint() == "http://127.0.0.1:8080"
    assert config.member.advertised_endpoint(port=4321) == "http://127.0.0.1:4321"
    assert config.member.suffix  # the hostname
    assert config.member.shard_limit == 1024
    assert config.http.enabled and config.http.port == 8090
    assert (config.log.level, config.log.format) == ("info", "text")
    assert config.data_dir == (tmp_path / "data").resolve()
    assert config.journals is None and config.shards is None


def _error(text: str, env: dict[str, str] | None = None) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_config(text, env=env or {})
    return info.value


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            MINIMAL + '[member]\nzoen = "a"\n',
            "member.zoen = 'a': unknown key (expected one of: zone, suffix, host, port, "
            "endpoint, shard_limit)",
        ),
        (
            MINIMAL + "[metrics]\nport = 1\n",
            "metrics = a table: unknown key (expected one of: application, member, etcd, "
            "broker, data_dir, log, http, security, limits, journals, shards)",
        ),
        (
            MINIMAL + "[shards.common]\nmax_txn_durration = '1s'\n",
            "shards.common.max_txn_durration: unknown field",
        ),
    ],
)
def test_unknown_keys_are_named_with_the_keys_expected(text: str, message: str) -> None:
    assert message in str(_error(text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (MINIMAL + '[member]\nport = "8080"\n', "member.port = '8080': expected an integer"),
        (
            MINIMAL + "[member]\nport = 70000\n",
            "member.port = 70000: expected a value less than or equal to 65535",
        ),
        (MINIMAL + "[member]\nzone = 3\n", "member.zone = 3: expected a string"),
        (MINIMAL + '[http]\nenabled = "no"\n', "http.enabled = 'no': expected true or false"),
        (
            MINIMAL + '[etcd]\nendpoints = "http://a:1"\n',
            "etcd.endpoints = 'http://a:1': expected a list",
        ),
        (
            MINIMAL + '[log]\nformat = "xml"\n',
            "log.format = 'xml': expected one of 'text' or 'json'",
        ),
        ("member = 3\n" + MINIMAL, "member = 3: expected a table"),
        (
            MINIMAL + '[broker]\nendpoint = "ftp://x:1"\n',
            "broker.endpoint = 'ftp://x:1': expected an endpoint like",
        ),
        (
            MINIMAL + '[etcd]\nprefix = "gazette/"\n',
            "etcd.prefix = 'gazette/': expected an absolute key prefix",
        ),
        (
            MINIMAL + "[[shards.shards]]\nid = 'abcd'\nhot_standbys = 'x'\n",
            "shards.shards[0].hot_standbys: expected a non-negative integer, got 'x'",
        ),
    ],
)
def test_wrong_types_name_the_key_value_and_expectation(text: str, message: str) -> None:
    assert message in str(_error(text))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            MINIMAL + '[etcd]\nlease_ttl = "20x"\n',
            "etcd.lease_ttl = '20x': expected a duration like \"1s\"",
        ),
        (
            MINIMAL + "[etcd]\nlease_ttl = 20\n",
            "etcd.lease_ttl = 20: expected a duration string like",
        ),
        (
            MINIMAL + '[etcd]\nlease_ttl = "500ms"\n',
            "etcd.lease_ttl = '500ms': expected a lease TTL of at least 1s",
        ),
        (
            MINIMAL + "[shards.common]\nmax_txn_duration = 'soon'\n",
            "shards.common.max_txn_duration: expected a duration like",
        ),
    ],
)
def test_bad_durations_name_the_key(text: str, message: str) -> None:
    assert message in str(_error(text))


def test_missing_required_keys_are_named() -> None:
    """A missing application (or module) is named with what belongs there."""
    assert str(_error("")) == "application: missing required key (the Application to run)"
    assert str(_error("[application]\n")) == (
        'application.module: missing required key (the Application class as "package.module:Class")'
    )
    assert "broker.endpoint: missing required key" in str(_error(MINIMAL + "[broker]\n"))
    assert "shards.shards[0].id: missing: every shard needs an id" in str(
        _error(MINIMAL + "[[shards.shards]]\nhot_standbys = 1\n")
    )


@pytest.mark.parametrize(
    "module",
    ["word_count.WordCount", "word_count:", ":WordCount", "a b:C", "word_count:Word-Count"],
)
def test_a_malformed_module_class_is_refused(module: str) -> None:
    error = _error(f'[application]\nmodule = "{module}"\n')
    assert str(error) == (
        f'application.module = {module!r}: expected "package.module:Class", '
        'e.g. "word_count.app:WordCount"'
    )


def test_an_unimportable_application_is_named_when_loaded() -> None:
    """`load()` imports the class; a missing module or attribute names application.module."""
    config = parse_config('[application]\nmodule = "no_such_module_xyz:App"\n', env={})
    with pytest.raises(
        ConfigError,
        match=r"application.module = 'no_such_module_xyz:App': module 'no_such_module_xyz' does not import",
    ):
        config.application.load()
    config = parse_config('[application]\nmodule = "json:NoSuchClass"\n', env={})
    with pytest.raises(ConfigError, match=r"module 'json' has no attribute 'NoSuchClass'"):
        config.application.load()
    config = parse_config('[application]\nmodule = "json:dumps"\n', env={})
    with pytest.raises(ConfigError, match="'dumps' is not a class"):
        config.application.load()


def test_every_problem_is_reported_at_once() -> None:
    error = _error(MINIMAL + '[member]\nport = "x"\nzone = 5\n[log]\nlevel = "loud"\n')
    assert sorted(error.keys) == ["log.level", "member.port", "member.zone"]
    assert str(error).startswith("3 problems:\n  ")


def test_invalid_toml_is_a_config_error() -> None:
    assert str(_error("[application\n")).startswith("<top level>: not valid TOML: ")


def test_environment_overrides_keys() -> None:
    """GAZETTE_TRIO_SECTION__KEY sets section.key: strings as written, other types parsed."""
    env = {
        "GAZETTE_TRIO_MEMBER__ZONE": "1234",  # a string key stays a string, even if numeric
        "GAZETTE_TRIO_MEMBER__PORT": "9001",
        "gazette_trio_log__level": "debug",
        "GAZETTE_TRIO_HTTP__ENABLED": "false",
        "GAZETTE_TRIO_ETCD__ENDPOINTS": "http://a:2379, http://b:2379",
        "GAZETTE_TRIO_ETCD__LEASE_TTL": "5s",
        "GAZETTE_TRIO_APPLICATION__SETTINGS__GREETING": "hello",
        "UNRELATED": "x",
    }
    config = parse_config(MINIMAL + '[member]\nzone = "file-zone"\nport = 1\n', env=env)
    assert config.member.zone == "1234"
    assert config.member.port == 9001
    assert config.log.level == "debug"
    assert config.http.enabled is False
    assert config.etcd is not None  # the override created the table: real etcd
    assert config.etcd.endpoints == ["http://a:2379", "http://b:2379"]
    assert config.etcd.lease_ttl == datetime.timedelta(seconds=5)
    assert config.application.settings == {"greeting": "hello"}


def test_a_bad_environment_value_names_the_variable() -> None:
    error = _error(MINIMAL, env={"GAZETTE_TRIO_MEMBER__PORT": "eighty"})
    assert str(error) == (
        "member.port (from $GAZETTE_TRIO_MEMBER__PORT) = 'eighty': expected an integer"
    )
    error = _error(MINIMAL, env={"GAZETTE_TRIO_MEMBER__PROT": "1"})
    assert "member.prot (from $GAZETTE_TRIO_MEMBER__PROT) = 1: unknown key" in str(error)


def test_journals_and_shards_may_live_in_yaml_files(tmp_path: Path) -> None:
    """`journals = "file.yaml"` reads a journalspace next to the config; errors name both."""
    (tmp_path / "journals.yaml").write_text(
        "name: ex/\nreplication: 1\nfragment: {length: 4096, compression_codec: NONE, "
        "refresh_interval: 1m}\nchildren:\n- name: ex/one\n"
    )
    (tmp_path / "shards.yaml").write_text(
        "common:\n  max_txn_duration: 2s\nshards:\n- id: s-0001\n  sources: [{journal: ex/one}]\n"
    )
    (tmp_path / "config.toml").write_text(
        'journals = "journals.yaml"\nshards = "shards.yaml"\n' + MINIMAL
    )
    config = load_config(tmp_path / "config.toml", env={})
    assert [j.name for j in config.declared_journals()] == ["ex/one"]
    assert [s.id for s in config.declared_shards()] == ["s-0001"]

    (tmp_path / "shards.yaml").write_text(
        "shards:\n- id: s-0001\n  sources: [{journal: ex/one}]\n  disable: 3\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "config.toml", env={})
    assert "shards.shards[0].disable: expected true or false, got 3 (in " in str(info.value)
    (tmp_path / "config.toml").write_text('shards = "missing.yaml"\n' + MINIMAL)
    with pytest.raises(
        ConfigError, match=r"shards = 'missing\.yaml': expected a readable YAML file"
    ):
        load_config(tmp_path / "config.toml", env={})


def test_declared_specs_must_be_complete() -> None:
    """Declared shards and journals are validated as the Apply would be."""
    error = _error(
        MINIMAL + "[[shards.shards]]\nid = 'count-000'\nsources = [{journal = 'ex/one'}]\n"
    )
    # The rule and its wording are Gazette's (consumer.shard_spec.validate).
    assert str(error).startswith("shards.shards[0]: shard count-000: invalid MaxTxnDuration")
    error = _error(
        "[journals]\nname = 'ex/'\nreplication = 9\nchildren = [{name = 'ex/one'}]\n" + MINIMAL
    )
    assert str(error).startswith("journals: journal ex/one: invalid Replication (9; expected")


def test_declared_journals_start_from_one_machine_defaults() -> None:
    """A config names only what it cares about; the rest is filled in."""
    config = parse_config(
        "[journals]\nname = 'ex/'\nchildren = [{name = 'ex/one', fragment = {length = 2048}}]\n"
        + MINIMAL,
        base_dir=Path("."),
        env={},
    )
    (spec,) = config.declared_journals()
    assert spec.name == "ex/one"
    assert spec.replication == 1
    assert spec.fragment is not None and spec.fragment.length == 2048
    assert spec.fragment.refresh_interval is not None


def test_a_command_exits_with_code_2_and_the_message_on_stderr(tmp_path: Path) -> None:
    """`load_config_or_exit` is what `serve` uses: exit 2, the problem on stderr."""
    file = tmp_path / "config.toml"
    file.write_text(MINIMAL + '[member]\nport = "x"\n')

    @click.command()
    @click.argument("path")
    def serve(path: str) -> None:
        load_config_or_exit(path, env={})

    result = CliRunner().invoke(serve, [str(file)])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert f"bad config: {file}: member.port = 'x': expected an integer" in result.stderr

    result = CliRunner().invoke(serve, [str(tmp_path / "nope.toml")])
    assert result.exit_code == 2
    assert "cannot read the config file: No such file or directory" in result.stderr


def _schema_keys(model: type, prefix: str = "") -> list[str]:
    from pydantic import BaseModel

    keys = []
    for name, field in model.model_fields.items():  # type: ignore[attr-defined]
        key = f"{prefix}{name}"
        keys.append(key)
        annotation = field.annotation
        for candidate in (annotation, *getattr(annotation, "__args__", ())):
            if isinstance(candidate, type) and issubclass(candidate, BaseModel):
                keys.extend(_schema_keys(candidate, key + "."))
    return keys


def test_every_key_is_documented() -> None:
    """docs/config.md has a row for every key of the schema."""
    doc = (Path(__file__).parents[2] / "docs" / "config.md").read_text()
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", doc, re.MULTILINE))
    missing = [key for key in _schema_keys(Config) if key not in documented]
    assert missing == []


@pytest.mark.parametrize(
    ("hostname", "suffix"),
    [
        ("worker-17.example.com", "worker-17.example.com"),
        ("vm", "member-vm"),  # too short for a Gazette member id
        ("my host!", "my-host-"),
    ],
)
def test_the_default_suffix_is_the_hostname_made_valid(
    monkeypatch: pytest.MonkeyPatch, hostname: str, suffix: str
) -> None:
    from gazette_trio.runtime import config

    monkeypatch.setattr(config, "_hostname", lambda: hostname)
    assert parse_config(MINIMAL, env={}).member.suffix == suffix


def test_an_explicit_bad_suffix_is_named() -> None:
    error = _error(MINIMAL + '[member]\nsuffix = "ab"\n')
    assert (
        str(error) == "member.suffix = 'ab': expected a suffix of 4-128 letters, digits and -_+/."
    )


def test_another_tools_variable_does_not_break_the_config() -> None:
    """Only GAZETTE_TRIO_ variables that name a config key are overrides; a
    shell that exported, say, the shards CLI's endpoint can still serve."""
    config = parse_config(MINIMAL, base_dir=Path("."), env={"GAZETTE_TRIO_ENDPOINT": "x:1"})
    assert config.member.port == 8080
