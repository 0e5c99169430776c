"""Reading what `gazctl` prints: its tables, its YAML and its JSON lines.

gazctl's table output is a box-drawn grid; `rows` turns it into lists of
cells (without the header). `yaml_doc` and `json_lines` parse the other
formats. Shared by the interop tests that compare gazctl with gazette-trio's
own commands.
"""

from __future__ import annotations

import json
from typing import Any

import yaml


def grid(stdout: str) -> list[list[str]]:
    """Every row of a gazctl table, header first, as stripped cells."""
    out = []
    for line in stdout.splitlines():
        if line.startswith("│"):
            out.append([cell.strip() for cell in line.strip("│").split("│")])
    return out


def rows(stdout: str) -> list[list[str]]:
    """The body of a gazctl table: its rows after the header."""
    return grid(stdout)[1:]


def header(stdout: str) -> list[str]:
    table = grid(stdout)
    assert table, f"no table in:\n{stdout}"
    return table[0]


def column(stdout: str, name: str) -> dict[str, str]:
    """First column (the name or ID) → the cell of column `name`."""
    head = header(stdout)
    at = head.index(name)
    return {row[0]: row[at] for row in rows(stdout)}


def yaml_doc(stdout: str) -> Any:
    return yaml.safe_load(stdout)


def json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.strip()]


def leaves(tree: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The journals (or shards) of a gazctl YAML tree by name, each with what
    it inherits from its ancestors merged in: labels accumulate, any other
    field of a child replaces its parent's."""
    out: dict[str, dict[str, Any]] = {}

    def walk(node: dict[str, Any], inherited: dict[str, Any]) -> None:
        merged = {**inherited, **{k: v for k, v in node.items() if k != "children"}}
        merged["labels"] = [*inherited.get("labels", []), *node.get("labels", [])]
        if "children" in node:
            for child in node["children"]:
                walk(child, merged)
        else:
            out[str(node.get("name") or node.get("id"))] = merged

    walk(tree, {})
    return out


def sha1_hex(summary: dict[str, int]) -> str:
    """A gazctl fragment's `sum` (SHA-1 as three big-endian words) in hex."""
    return (
        summary.get("part1", 0).to_bytes(8, "big")
        + summary.get("part2", 0).to_bytes(8, "big")
        + summary.get("part3", 0).to_bytes(4, "big")
    ).hex()
