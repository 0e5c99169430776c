"""Gazette's protos compiled with the official `protobuf` runtime.

Wire-compatibility tests need an independent implementation of the same
`.proto` files to cross-check our betterproto2 classes and servers against.
`official()` compiles `proto/` with grpcio-tools' protoc into a temporary
directory (once per test session) and imports the resulting `_pb2` modules.
"""

from __future__ import annotations

import functools
import importlib
import subprocess
import sys
import tempfile
from pathlib import Path
from types import ModuleType, SimpleNamespace

PROTO_DIR = Path(__file__).resolve().parent.parent / "proto"


@functools.lru_cache(maxsize=1)
def official() -> SimpleNamespace:
    """Modules `protocol`, `consumer`, `recoverylog`, `rpc` (etcdserverpb), `kv` (mvccpb)."""
    out = Path(tempfile.mkdtemp(prefix="gazette-trio-official-pb-"))
    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "grpc_tools.protoc",
            f"-I{PROTO_DIR}",
            f"--python_out={out}",
            *protos,
        ],
        check=True,
        capture_output=True,
    )
    # protoc emits absolute imports rooted at proto/ ("from broker.protocol import ...").
    for d in out.rglob("*"):
        if d.is_dir():
            (d / "__init__.py").touch()
    sys.path.insert(0, str(out))

    def load(name: str) -> ModuleType:
        return importlib.import_module(name)

    return SimpleNamespace(
        protocol=load("broker.protocol.protocol_pb2"),
        consumer=load("consumer.protocol.protocol_pb2"),
        recoverylog=load("consumer.recoverylog.recorded_op_pb2"),
        rpc=load("etcd.etcdserverpb.rpc_pb2"),
        kv=load("etcd.mvccpb.kv_pb2"),
    )
