"""Fragments persisted to the `file://` store outlive the brokers that wrote them.

Content is appended through Gazette's brokers until some fragments are
persisted, then every broker is SIGKILLed and its spool directory removed:
what was only in spools is gone, what was persisted is not. With the brokers
started again:

- both `gazctl journals read` and `gazette-trio journals read` return the
  persisted content, byte for byte, and both list the same fragments;
- appends are refused (Gazette will not write offsets it cannot prove
  unused) until `reset-head`, which `gazctl` and `gazette-trio` each do for
  one journal; appends then go on from the persisted end.

This module has brokers of its own, since it kills them.
"""

from __future__ import annotations

import json
import shutil
import uuid
from pathlib import Path
from typing import Any

from .conftest import Gazctl, GazetteCluster, trio_cli, wait_until
from .gazctl_output import column, json_lines, sha1_hex


def fragment_specs(ctl: Gazctl, journal: str) -> list[dict[str, Any]]:
    out = ctl("journals", "fragments", "-l", f"name={journal}", "-o", "json").ok()
    return [line["spec"] for line in json_lines(out)]


def test_persisted_fragments_are_read_back_after_the_spools_are_gone(
    gazctl: Gazctl, gazette: GazetteCluster, tmp_path: Path
) -> None:
    ctl = gazctl.at(broker=gazette.address)
    base = f"store/{uuid.uuid4().hex[:8]}/"
    specs = tmp_path / "journals.yaml"
    specs.write_text(
        f"name: {base}\nreplication: 2\n"
        "fragment: {length: 1024, compression_codec: GZIP, stores: ['file:///'], "
        "refresh_interval: 1s}\n"
        f"children:\n- name: {base}by-gazctl\n- name: {base}by-trio\n"
    )
    ctl("journals", "apply", f"--specs={specs}").ok()
    journals = [f"{base}by-gazctl", f"{base}by-trio"]

    def assigned() -> bool:
        out = ctl("journals", "list", "-l", f"name:prefix={base}", "--primary", "--replicas")
        table = column(out.ok(), "REPLICAS")
        return len(table) == 2 and all(r not in ("", "<none>") for r in table.values())

    wait_until("both journals replicated", assigned, timeout=30)

    records = [f"record {n:04d} {'.' * 60}\n" for n in range(80)]  # ~5 KiB, 5+ fragments
    for journal in journals:
        for at in range(0, len(records), 10):
            ctl(
                "journals", "append", "-l", f"name={journal}", input="".join(records[at : at + 10])
            ).ok()
    written = "".join(records)

    persisted_end: dict[str, int] = {}

    def persisted() -> bool:
        for journal in journals:
            specs = fragment_specs(ctl, journal)
            stored = [s for s in specs if s.get("backing_store") == "file:///"]
            # Every fragment but the one still spooling is persisted.
            if len(stored) < len(specs) - 1 or not stored:
                return False
            persisted_end[journal] = max(int(s["end"]) for s in stored)
        return True

    wait_until("rolled fragments persisted", persisted, timeout=60)
    before = {journal: fragment_specs(ctl, journal) for journal in journals}

    for broker in gazette.brokers:
        assert broker.proc is not None
        broker.proc.kill()
        shutil.rmtree(broker.spool)
    for broker in gazette.brokers:
        gazette.start(broker)
    gazette.wait_announced()
    wait_until("both journals replicated again", assigned, timeout=60)

    for journal in journals:
        end = persisted_end[journal]
        assert 0 < end < len(written)
        expected = written[:end]
        assert ctl("journals", "read", "-l", f"name={journal}").ok() == expected
        assert trio_cli("journals", "-e", gazette.endpoint, "read", journal).ok() == expected

        # What the store holds, as each tool lists it after the restart.
        stored = [s for s in before[journal] if s.get("backing_store") == "file:///"]
        listed = fragment_specs(ctl, journal)
        assert [(int(s.get("begin", 0)), int(s["end"])) for s in listed] == [
            (int(s.get("begin", 0)), int(s["end"])) for s in stored
        ]
        by_trio = json.loads(
            trio_cli("journals", "-e", gazette.endpoint, "fragments", journal, "-o", "json").ok()
        )
        assert [(f["begin"], f["end"], f["sha1"]) for f in by_trio] == [
            (int(s.get("begin", 0)), int(s["end"]), sha1_hex(s["sum"])) for s in stored
        ]

        # Appends wait for an operator's reset-head.
        refused = ctl("journals", "append", "-l", f"name={journal}", input="too soon\n")
        assert refused.code != 0 and "INDEX_HAS_GREATER_OFFSET" in refused.stderr, refused

    # One journal reset by each tool; appends then go on from the persisted end.
    resets = {
        f"{base}by-gazctl": lambda j: ctl("journals", "reset-head", "-l", f"name={j}"),
        f"{base}by-trio": lambda j: trio_cli(
            "journals", "-e", gazette.endpoint, "reset-head", "-l", f"name={j}"
        ),
    }
    for journal, reset in resets.items():
        reset(journal).ok()
        ctl("journals", "append", "-l", f"name={journal}", input="after reset\n").ok()
        expected = written[: persisted_end[journal]] + "after reset\n"
        assert ctl("journals", "read", "-l", f"name={journal}").ok() == expected
