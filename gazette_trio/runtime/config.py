"""The member's `config.toml`, validated into typed settings.

A member is started from one TOML file (`gazette-trio serve config.toml`).
This module reads it (tomllib), applies environment overrides, and validates
the result into a `Config` of pydantic models, strictly: an unknown key, a
value of the wrong type, a malformed duration, a missing required key or an
`application.module` that is not `module:Class` is a `ConfigError` whose
message names the key as a dotted path, shows the value, and says what was
expected. `gazette-trio serve` turns that error into exit code 2.

Environment variables override keys: `GAZETTE_TRIO_<SECTION>__<KEY>=value`
(a double underscore between levels, case-insensitive), for example
`GAZETTE_TRIO_MEMBER__ZONE=us-east-1a` or `GAZETTE_TRIO_ETCD__ENDPOINTS=
http://10.0.0.1:2379,http://10.0.0.2:2379`. A value is taken as written for
a string key and read as a TOML value (`9000`, `true`, `["a", "b"]`) for
other keys; a comma-separated value also fills a list of strings.

Relative paths in the file (`data_dir`, and `journals`/`shards` given as YAML
file names) are relative to the directory holding the config file, so a
member behaves the same from any working directory.

This module owns the schema, its defaults and its errors; every key is
documented in `docs/config.md`. It does not start anything: `serve` reads the
`Config` and builds the member from it.
"""

from __future__ import annotations

import datetime
import importlib
import os
import re
import socket
import sys
import tomllib
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

import click
import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from .. import limits as limits_module
from ..broker import journalspace
from ..broker.durations import parse_duration
from ..broker.journal_spec import new_journal_spec, union_specs, validate_journal_spec
from ..errors import GazetteTrioError
from ..protocol import consumer as pc
from ..protocol import protocol as pb
from ..protocol.validation import TOKEN_SYMBOLS, validate_token
from ..protocol.validation import ValidationError as SpecValidationError
from .shardspace import DURATION_EXAMPLES, ShardSpace, SpecError, join_path

__all__ = [
    "ENV_PREFIX",
    "ApplicationSettings",
    "BrokerSettings",
    "Config",
    "ConfigError",
    "ConfigExit",
    "EtcdSettings",
    "HttpSettings",
    "LogSettings",
    "MemberSettings",
    "Problem",
    "SecuritySettings",
    "load_config",
    "load_config_or_exit",
    "parse_config",
]

ENV_PREFIX = "GAZETTE_TRIO_"


# --------------------------------------------------------------------------
# Errors


class Problem:
    """One thing wrong with a config: where, what was there, what was expected."""

    def __init__(self, key: str, expected: str, value: Any = None, *, has_value: bool = True):
        self.key = key
        self.expected = expected
        self.value = value
        self.has_value = has_value
        self.source: str | None = None  # the environment variable that set it, if any

    def __str__(self) -> str:
        where = self.key or "<top level>"
        if self.source:
            where = f"{where} (from ${self.source})"
        if self.has_value:
            return f"{where} = {_show(self.value)}: {self.expected}"
        return f"{where}: {self.expected}"


class ConfigError(GazetteTrioError):
    """The config cannot be used. `problems` lists each key at fault."""

    def __init__(self, problems: list[Problem], file: str | None = None) -> None:
        self.problems = problems
        self.file = file
        lines = [str(p) for p in problems]
        head = f"{file}: " if file else ""
        if len(lines) == 1:
            message = head + lines[0]
        else:
            message = head + f"{len(lines)} problems:\n  " + "\n  ".join(lines)
        super().__init__(message)

    @property
    def keys(self) -> list[str]:
        return [p.key for p in self.problems]


def _show(value: Any) -> str:
    if isinstance(value, Mapping):
        return "a table"
    if isinstance(value, list) and len(repr(value)) > 60:
        return "a list"
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --------------------------------------------------------------------------
# Value types


def _duration(value: Any) -> datetime.timedelta:
    if isinstance(value, datetime.timedelta):
        return value
    if not isinstance(value, str):
        raise ValueError(f"expected a duration string like {DURATION_EXAMPLES}")
    try:
        return parse_duration(value)
    except ValueError:
        raise ValueError(f"expected a duration like {DURATION_EXAMPLES}") from None


Duration = Annotated[datetime.timedelta, BeforeValidator(_duration)]
"""A Go-style duration string ("1s", "500ms", "2m") as a timedelta."""


def _path(value: Any) -> Path:
    if isinstance(value, Path):
        return value
    if not isinstance(value, str) or not value:
        raise ValueError("expected a non-empty path string")
    return Path(value)


PathValue = Annotated[Path, BeforeValidator(_path)]

_CLASS_REF = re.compile(r"^[A-Za-z_][\w]*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_GROUP_PREFIX = re.compile(r"^(/[\w\-+.=%]+)+$")


def _is_token(value: str, symbols: str, lo: int, hi: int) -> bool:
    try:
        validate_token(value, symbols, lo, hi)
    except SpecValidationError:
        return False
    return True


def _hostname() -> str:
    return socket.gethostname()


def _default_suffix() -> str:
    """The hostname, made a valid suffix (4-128 token characters) if it is not one.

    Hostnames like "vm" are too short for Gazette's member ids: those become
    "member-vm"; characters outside the token alphabet become "-".
    """
    host = "".join(ch if _is_token(ch, TOKEN_SYMBOLS, 1, 4) else "-" for ch in _hostname())
    if not _is_token(host, TOKEN_SYMBOLS, 4, 128):
        host = f"member-{host}"[:128]
    return host


class _Section(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)


# --------------------------------------------------------------------------
# The schema


class ApplicationSettings(_Section):
    """`[application]`: the Application class and its own settings."""

    module: str = Field(
        description='the Application class as "package.module:Class"',
    )
    name: str | None = Field(
        None,
        description="consumer group name; defaults to the class name in kebab-case "
        "(WordCount -> word-count)",
    )
    settings: dict[str, Any] = Field(
        default_factory=dict,
        description="free-form table passed to the application unchanged",
    )

    @field_validator("module")
    @classmethod
    def _check_module(cls, value: str) -> str:
        if not _CLASS_REF.match(value):
            raise ValueError('expected "package.module:Class", e.g. "word_count.app:WordCount"')
        return value

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str | None) -> str | None:
        if value is not None and not _is_token(value, TOKEN_SYMBOLS.replace("/", ""), 1, 64):
            raise ValueError("expected a name of letters, digits, '-', '_', '+' or '.'")
        return value

    @property
    def group_name(self) -> str:
        """The consumer group's name (explicit, or derived from the class)."""
        if self.name:
            return self.name
        cls_name = self.module.rsplit(":", 1)[1].rsplit(".", 1)[-1]
        return re.sub(r"(?<=[a-z0-9])([A-Z])", r"-\1", cls_name).lower()

    def load(self, config_path: str | os.PathLike[str] | None = None) -> type:
        """Import and return the Application class; with `config_path`, the
        config file's directory is first put on the import path (where an
        application beside its config is found).

        Raises `ConfigError` on `application.module` if the module does not
        import or has no such attribute.
        """
        if config_path is not None:
            directory = str(Path(config_path).resolve().parent)
            if directory not in sys.path:
                sys.path.insert(0, directory)
        module_name, _, attr_path = self.module.partition(":")
        try:
            obj: Any = importlib.import_module(module_name)
        except ImportError as exc:
            raise ConfigError(
                [
                    Problem(
                        "application.module",
                        f"module {module_name!r} does not import: {exc}",
                        self.module,
                    )
                ]
            ) from exc
        for part in attr_path.split("."):
            try:
                obj = getattr(obj, part)
            except AttributeError:
                raise ConfigError(
                    [
                        Problem(
                            "application.module",
                            f"module {module_name!r} has no attribute {attr_path!r}",
                            self.module,
                        )
                    ]
                ) from None
        if not isinstance(obj, type):
            raise ConfigError(
                [Problem("application.module", f"{attr_path!r} is not a class", self.module)]
            )
        return obj


class MemberSettings(_Section):
    """`[member]`: this process as a member of the consumer group."""

    zone: str = Field("local", description="failure zone of this member (1-32 token characters)")
    suffix: str = Field(
        default_factory=_default_suffix,
        validate_default=True,  # a hostname that is no valid suffix must be reported
        description="unique id of this member within its zone (4-128 token characters); "
        'defaults to the hostname ("member-<hostname>" if the hostname is shorter than 4)',
    )
    host: str = Field("127.0.0.1", description="interface the gRPC API listens on")
    port: int = Field(8080, ge=0, le=65535, description="port of the gRPC API (0: any free port)")
    endpoint: str | None = Field(
        None,
        description="endpoint other members and clients dial; defaults to http://HOST:PORT "
        "(with the hostname when HOST is 0.0.0.0 or ::)",
    )
    shard_limit: int = Field(
        1024, ge=0, le=2**32 - 1, description="most shards this member will take"
    )

    @field_validator("zone")
    @classmethod
    def _check_zone(cls, value: str) -> str:
        if not _is_token(value, TOKEN_SYMBOLS, 1, 32):
            raise ValueError("expected a zone of 1-32 letters, digits and -_+/.")
        return value

    @field_validator("suffix")
    @classmethod
    def _check_suffix(cls, value: str) -> str:
        if not _is_token(value, TOKEN_SYMBOLS, 4, 128):
            raise ValueError("expected a suffix of 4-128 letters, digits and -_+/.")
        return value

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, value: str | None) -> str | None:
        if value is not None:
            _check_endpoint_text(value)
        return value

    def advertised_endpoint(self, port: int | None = None) -> str:
        """The endpoint to announce, given the port actually bound (for port 0)."""
        if self.endpoint:
            return self.endpoint
        host = self.host
        if host in ("0.0.0.0", "::", ""):
            host = _hostname()
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port if port is None else port}"


def _check_endpoint_text(value: str) -> None:
    from ..aio import parse_endpoint  # the one place endpoint syntax is defined

    try:
        parse_endpoint(value)
    except ValueError:
        raise ValueError(
            'expected an endpoint like "http://host:port", "host:port" or "unix:///path"'
        ) from None


class EtcdSettings(_Section):
    """`[etcd]`: a real etcd cluster. Leave the table out to run the embedded one."""

    endpoints: list[str] = Field(
        default_factory=lambda: ["http://127.0.0.1:2379"],
        min_length=1,
        description="etcd client endpoints",
    )
    lease_ttl: Duration = Field(
        datetime.timedelta(seconds=20),
        description="TTL of this member's etcd lease; a crashed member's shards move after it",
    )
    prefix: str | None = Field(
        None,
        description="etcd key root of the consumer group; "
        "defaults to /gazette/consumers/<application name>",
    )

    @field_validator("endpoints")
    @classmethod
    def _check_endpoints(cls, value: list[str]) -> list[str]:
        for endpoint in value:
            _check_endpoint_text(endpoint)
        return value

    @field_validator("lease_ttl")
    @classmethod
    def _check_ttl(cls, value: datetime.timedelta) -> datetime.timedelta:
        if value < datetime.timedelta(seconds=1):
            raise ValueError("expected a lease TTL of at least 1s")
        return value

    @field_validator("prefix")
    @classmethod
    def _check_prefix(cls, value: str | None) -> str | None:
        if value is not None and not _GROUP_PREFIX.match(value):
            raise ValueError(
                'expected an absolute key prefix without a trailing "/", '
                'e.g. "/gazette/consumers/word-count"'
            )
        return value


class BrokerSettings(_Section):
    """`[broker]`: a Gazette broker. Leave the table out to run the embedded journal server."""

    endpoint: str = Field(
        description="endpoint of a Gazette broker (or `gazette-trio broker serve`)"
    )

    @field_validator("endpoint")
    @classmethod
    def _check_endpoint(cls, value: str) -> str:
        _check_endpoint_text(value)
        return value


class LogSettings(_Section):
    """`[log]`: structured logs on stderr."""

    level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="least severe level logged"
    )
    format: Literal["text", "json"] = Field(
        "text", description="text: one readable line per record; json: one JSON object per line"
    )


class HttpSettings(_Section):
    """`[http]`: the HTTP server for /metrics, /status and /status.json."""

    enabled: bool = Field(True, description="serve metrics and the status page")
    host: str = Field("127.0.0.1", description="interface the HTTP server listens on")
    port: int = Field(8090, ge=0, le=65535, description="HTTP port (0: any free port)")


_DEFAULT_LIMITS = limits_module.Limits()


class SecuritySettings(_Section):
    """`[security]`: tokens and TLS on every port (docs/security.md).

    Secrets are files named here (or by environment variables such as
    `GAZETTE_TRIO_SECURITY__AUTH_KEYS_FILE`), never values in this file.
    Relative paths are relative to the config file's directory.
    """

    auth_keys_file: PathValue | None = Field(
        None,
        description="file of base64 keys, separated by whitespace or commas (Gazette's "
        "--auth-keys): the first signs this member's calls, any verifies calls to it",
    )
    auth_token_file: PathValue | None = Field(
        None,
        description="file holding a pre-shared bearer token this member presents to brokers "
        "(instead of keys; calls to this member are then not verified)",
    )
    server_cert_file: PathValue | None = Field(
        None, description="TLS certificate of the gRPC port (TLS is on when set)"
    )
    server_key_file: PathValue | None = Field(None, description="private key of server_cert_file")
    server_ca_file: PathValue | None = Field(
        None, description="CA that must have signed every client's certificate (required then)"
    )
    trusted_ca_file: PathValue | None = Field(
        None, description="CA bundle trusted for https:// brokers and members (default: system)"
    )
    client_cert_file: PathValue | None = Field(
        None, description="certificate presented to https:// brokers and members"
    )
    client_key_file: PathValue | None = Field(None, description="private key of client_cert_file")
    etcd_trusted_ca_file: PathValue | None = Field(
        None, description="CA bundle trusted for an https:// etcd"
    )
    etcd_cert_file: PathValue | None = Field(
        None, description="client certificate presented to etcd"
    )
    etcd_key_file: PathValue | None = Field(None, description="private key of etcd_cert_file")
    insecure: bool = Field(
        False,
        description="allow listening on a non-loopback interface without auth keys or TLS",
    )

    @model_validator(mode="after")
    def _check_pairs(self) -> SecuritySettings:
        if self.auth_keys_file and self.auth_token_file:
            raise ValueError("set auth_keys_file or auth_token_file, not both")
        if bool(self.server_cert_file) != bool(self.server_key_file):
            raise ValueError("server_cert_file and server_key_file go together")
        if self.server_ca_file and not self.server_cert_file:
            raise ValueError("server_ca_file needs server_cert_file and server_key_file")
        if self.client_key_file and not self.client_cert_file:
            raise ValueError("client_key_file needs client_cert_file")
        if self.etcd_key_file and not self.etcd_cert_file:
            raise ValueError("etcd_key_file needs etcd_cert_file")
        return self

    def resolved(self, base: Path) -> SecuritySettings:
        """These settings with relative paths made relative to `base`."""
        update = {
            name: (base / value).resolve()
            for name, value in self.__dict__.items()
            if isinstance(value, Path) and not value.is_absolute()
        }
        return self.model_copy(update=update) if update else self


class LimitsSettings(_Section):
    """`[limits]`: what clients may make this member hold (docs/limits.md)."""

    max_grpc_recv_size: int = Field(
        _DEFAULT_LIMITS.max_grpc_recv_size,
        ge=1024,
        description="largest gRPC message accepted, in bytes (Gazette's --max-grpc-recv-size)",
    )
    max_append_size: int = Field(
        _DEFAULT_LIMITS.max_append_size,
        ge=1,
        description="most content one Append to the embedded journal server may carry, in bytes",
    )
    max_connections: int = Field(
        _DEFAULT_LIMITS.max_connections,
        ge=0,
        description="gRPC connections served at once (0: the descriptor limit less 256)",
    )
    max_concurrent_streams: int = Field(
        _DEFAULT_LIMITS.max_concurrent_streams,
        ge=1,
        description="concurrent calls per gRPC connection",
    )
    idle_timeout: Duration = Field(
        datetime.timedelta(seconds=_DEFAULT_LIMITS.idle_timeout),
        description="how long a gRPC connection with no call in progress stays open (0: forever)",
    )
    max_http_connections: int = Field(
        _DEFAULT_LIMITS.max_http_connections,
        ge=1,
        description="connections to the HTTP status port served at once",
    )
    stream_buffer: int = Field(
        _DEFAULT_LIMITS.stream_buffer_bytes,
        ge=1024,
        description="bytes of replies queued per streaming call for a slow reader",
    )
    stream_window: int = Field(
        _DEFAULT_LIMITS.stream_window,
        ge=limits_module.MIN_WINDOW,
        le=limits_module.MAX_WINDOW,
        description="HTTP/2 window of request data granted per gRPC call, in bytes",
    )

    @model_validator(mode="after")
    def _consistent(self) -> LimitsSettings:
        # Limits checks what spans keys (the connection window that
        # max_concurrent_streams and stream_window make together).
        self.to_limits()
        return self

    def to_limits(self) -> limits_module.Limits:
        return limits_module.Limits(
            max_grpc_recv_size=self.max_grpc_recv_size,
            max_append_size=self.max_append_size,
            max_connections=self.max_connections,
            max_concurrent_streams=self.max_concurrent_streams,
            idle_timeout=self.idle_timeout.total_seconds(),
            max_http_connections=self.max_http_connections,
            stream_buffer_bytes=self.stream_buffer,
            stream_window=self.stream_window,
        )


def _load_space(value: Any, info: ValidationInfo, what: str) -> tuple[Any, str]:
    """The data of an inline table, or of the YAML file a string names (and its path)."""
    if isinstance(value, Mapping):
        return value, ""
    if not isinstance(value, str):
        raise ValueError(f"expected a {what} table or the name of a YAML file")
    path = Path((info.context or {}).get("base_dir", ".")) / value
    try:
        text = path.read_text()
    except OSError as exc:
        raise ValueError(f"expected a readable YAML file ({exc.strerror}: {path})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise _NestedError("", f"{path} is not valid YAML: {exc}") from None
    return ({} if data is None else data), f" (in {path})"


def _journals(value: Any, info: ValidationInfo) -> journalspace.Node | None:
    """A journalspace (gazette_trio.broker.journalspace), with every journal complete."""
    if value is None or isinstance(value, journalspace.Node):
        return value
    data, where = _load_space(value, info, "journalspace")
    try:
        root = journalspace.node_from_dict(data)
        # Declared journals start from one-machine defaults (replication 1,
        # 64 MiB fragments, ...), so a config may name just what it cares about.
        name = root.spec.name
        root.spec = union_specs(root.spec, new_journal_spec("defaults/journal"))
        root.spec.name = name
        journalspace.validate_tree(root)
        for node in journalspace.push_down(root):
            if node.delete:
                continue
            try:
                validate_journal_spec(node.spec)
            except SpecValidationError as exc:
                raise _NestedError("", f"journal {node.spec.name}: {exc}{where}") from None
    except SpecValidationError as exc:
        raise _NestedError("", f"{exc}{where}") from None
    return root


def _shards(value: Any, info: ValidationInfo) -> ShardSpace | None:
    """A shardspace, with every shard complete."""
    if value is None or isinstance(value, ShardSpace):
        return value
    data, where = _load_space(value, info, "shardspace")
    try:
        space = ShardSpace.from_data(data)
        space.validate()
    except SpecError as exc:
        raise _NestedError(exc.path, f"{exc.message}{where}") from None
    return space


class _NestedError(ValueError):
    """A spec error inside `journals`/`shards`, carrying the path within it."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(message)
        self.path = path
        self.message = message


class Config(_Section):
    """A member's whole configuration."""

    application: ApplicationSettings = Field(description="the Application to run")
    member: MemberSettings = Field(default_factory=MemberSettings)  # type: ignore[arg-type]
    etcd: EtcdSettings | None = Field(None, description="real etcd; absent: embedded")
    broker: BrokerSettings | None = Field(None, description="real broker; absent: embedded")
    data_dir: PathValue = Field(
        Path("data"),
        description="directory for the embedded etcd and journals and for shard stores",
    )
    log: LogSettings = Field(default_factory=LogSettings)  # type: ignore[arg-type]
    http: HttpSettings = Field(default_factory=HttpSettings)  # type: ignore[arg-type]
    security: SecuritySettings = Field(default_factory=SecuritySettings)  # type: ignore[arg-type]
    limits: LimitsSettings = Field(default_factory=LimitsSettings)  # type: ignore[arg-type]
    journals: Annotated[journalspace.Node | None, BeforeValidator(_journals)] = Field(
        None, description="journalspace of journals to create at start-up"
    )
    shards: Annotated[ShardSpace | None, BeforeValidator(_shards)] = Field(
        None, description="shardspace of shards to create at start-up"
    )

    model_config = ConfigDict(
        strict=True, extra="forbid", frozen=True, arbitrary_types_allowed=True
    )

    @model_validator(mode="before")
    @classmethod
    def _sections_default_to_empty_tables(cls, data: Any) -> Any:
        # Validating absent sections as empty tables reports a bad default
        # (a hostname that is no valid member.suffix) under its own key.
        if isinstance(data, dict):
            data = dict(data)
            for section in ("member", "log", "http"):
                data.setdefault(section, {})
        return data

    @property
    def group_prefix(self) -> str:
        """etcd key root of the consumer group (configured, or derived from the app)."""
        if self.etcd is not None and self.etcd.prefix:
            return self.etcd.prefix
        return f"/gazette/consumers/{self.application.group_name}"

    def declared_journals(self) -> list[pb.JournalSpec]:
        """Complete specs of the journals `journals` declares (deleted ones left out)."""
        if self.journals is None:
            return []
        return [n.spec for n in journalspace.push_down(self.journals) if not n.delete]

    def declared_shards(self) -> list[pc.ShardSpec]:
        """Complete specs of the shards `shards` declares (deleted ones left out)."""
        if self.shards is None:
            return []
        return [e.spec for e in self.shards.flattened() if not e.delete]

    @property
    def embedded_etcd(self) -> bool:
        return self.etcd is None

    @property
    def embedded_broker(self) -> bool:
        return self.broker is None


# --------------------------------------------------------------------------
# Loading


def load_config(path: str | os.PathLike[str], env: Mapping[str, str] | None = None) -> Config:
    """Read, override from the environment and validate a config file.

    `env` defaults to `os.environ`. Raises `ConfigError` (with the file name)
    for anything wrong, including a file that cannot be read or is not TOML.
    """
    file = Path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise ConfigError(
            [Problem("", f"cannot read the config file: {exc.strerror}", has_value=False)],
            str(file),
        ) from None
    return parse_config(text, base_dir=file.parent, env=env, file=str(file))


def parse_config(
    text: str,
    *,
    base_dir: str | os.PathLike[str] = ".",
    env: Mapping[str, str] | None = None,
    file: str | None = None,
) -> Config:
    """Validate config text; relative paths resolve against `base_dir`."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([Problem("", f"not valid TOML: {exc}", has_value=False)], file) from None
    sources = apply_env_overrides(data, os.environ if env is None else env, file)
    base = Path(base_dir)
    try:
        config = Config.model_validate(data, context={"base_dir": str(base)})
    except ValidationError as exc:
        problems = [_problem(err) for err in exc.errors()]
        for problem in problems:
            for key, var in sources.items():
                if problem.key == key or problem.key.startswith(key + "."):
                    problem.source = var
        raise ConfigError(problems, file) from None
    config = config.model_copy(update={"security": config.security.resolved(base)})
    if not config.data_dir.is_absolute():
        config = config.model_copy(update={"data_dir": (base / config.data_dir).resolve()})
    return config


def _dotted(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        out = join_path(out, f"[{part}]" if isinstance(part, int) else part)
    return out


_EXPECTED = {
    "int_type": "expected an integer",
    "int_from_float": "expected an integer",
    "string_type": "expected a string",
    "bool_type": "expected true or false",
    "list_type": "expected a list",
    "dict_type": "expected a table",
    "model_type": "expected a table",
    "float_type": "expected a number",
}


def _problem(err: Any) -> Problem:
    loc = tuple(part for part in err["loc"] if not str(part).startswith("function-"))
    key = _dotted(loc)
    kind = err["type"]
    value = err.get("input")
    if kind == "extra_forbidden":
        return Problem(key, f"unknown key{_known_keys(loc)}", value)
    if kind == "missing":
        return Problem(key, f"missing required key ({_description(loc)})", has_value=False)
    if kind == "value_error":
        cause = err.get("ctx", {}).get("error")
        if isinstance(cause, _NestedError):
            return Problem(join_path(key, cause.path), cause.message, has_value=False)
        message = str(cause) if cause is not None else err["msg"]
        return Problem(key, message, value)
    if kind == "literal_error":
        return Problem(key, f"expected one of {err['ctx']['expected']}", value)
    if kind in _EXPECTED:
        return Problem(key, _EXPECTED[kind], value)
    return Problem(key, str(err["msg"]).replace("Input should be", "expected a value"), value)


def _section_model(loc: tuple[Any, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(str(part))
        if field is None:
            return None
        inner = _model_of(field.annotation)
        if inner is None:
            return None
        model = inner
    return model


def _model_of(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _model_of(arg)
        if found is not None:
            return found
    return None


def _known_keys(loc: tuple[Any, ...]) -> str:
    model = _section_model(loc[:-1])
    if model is None:
        return ""
    return f" (expected one of: {', '.join(model.model_fields)})"


def _description(loc: tuple[Any, ...]) -> str:
    model = _section_model(loc[:-1])
    if model is None:
        return "required"
    field = model.model_fields.get(str(loc[-1]))
    return field.description if field is not None and field.description else "required"


# --------------------------------------------------------------------------
# Environment overrides


def apply_env_overrides(
    data: dict[str, Any], env: Mapping[str, str], file: str | None = None
) -> dict[str, str]:
    """Write `GAZETTE_TRIO_A__B=v` variables into `data` as key a.b; returns key -> variable.

    Keys are lower-cased. The value is kept as a string where the schema
    expects one, and read as a TOML value (or a comma-separated list) otherwise.
    """
    sources: dict[str, str] = {}
    for var in sorted(env):
        if not var.upper().startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in var[len(ENV_PREFIX) :].split("__")]
        if len(parts) == 1 and parts[0] not in Config.model_fields:
            # Not a config key (keys in sections take `__`): another tool's
            # variable, such as the shards CLI's, is none of our business.
            continue
        if not all(parts):
            raise ConfigError(
                [Problem("", f"${var}: expected GAZETTE_TRIO_SECTION__KEY", env[var])], file
            )
        target = data
        for i, part in enumerate(parts[:-1]):
            child = target.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(
                    [
                        Problem(
                            ".".join(parts[: i + 1]),
                            f"${var} sets a key inside it, but it is not a table",
                            child,
                        )
                    ],
                    file,
                )
            target = child
        key = ".".join(parts)
        target[parts[-1]] = _env_value(parts, env[var])
        sources[key] = var
    return sources


def _env_value(parts: list[str], raw: str) -> Any:
    annotation = _annotation_at(parts)
    if annotation is not None and _accepts_str(annotation):
        return raw
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        pass
    if annotation is not None and _is_list(annotation):
        return [item.strip() for item in raw.split(",") if item.strip()]
    return raw


def _annotation_at(parts: list[str]) -> Any:
    model: type[BaseModel] | None = Config
    annotation: Any = None
    for part in parts:
        if model is None:
            return None
        field = model.model_fields.get(part)
        if field is None:
            return None
        annotation = field.annotation
        model = _model_of(annotation)
    return annotation


def _accepts_str(annotation: Any) -> bool:
    if annotation in (str, Path, datetime.timedelta):
        return True  # paths and durations are written as strings too
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return all(isinstance(a, str) for a in typing.get_args(annotation))
    if origin in (typing.Union, types.UnionType):
        return any(_accepts_str(a) for a in typing.get_args(annotation))
    return False


def _is_list(annotation: Any) -> bool:
    return typing.get_origin(annotation) is list


# --------------------------------------------------------------------------
# For command lines


class ConfigExit(click.ClickException):
    """A `ConfigError` on its way out of a command: message on stderr, exit code 2."""

    exit_code = 2

    def format_message(self) -> str:
        return f"bad config: {self.message}"


def load_config_or_exit(
    path: str | os.PathLike[str], env: Mapping[str, str] | None = None
) -> Config:
    """`load_config` for click commands: a `ConfigError` exits with code 2.

    The message (every problem, each naming its key) goes to stderr.
    """
    try:
        return load_config(path, env)
    except ConfigError as exc:
        raise ConfigExit(str(exc)) from exc
