"""`gazette_trio.testing`: an application's consumer group from its config,
as `serve` builds it, through the pytest plugin's `consumer_group` fixture.

The application is a copy of the word-count example whose config declares
no recovery logs: the in-process group must create them, as `serve` does
with its embedded journal server, or no count shard could start.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from gazette_trio.testing.cluster import Cluster

if TYPE_CHECKING:
    from gazette_trio.testing.pytest_plugin import OpenGroup

pytest_plugins = ["gazette_trio.testing.pytest_plugin"]

EXAMPLE = Path(__file__).parent.parent / "examples" / "word_count"


def without_declared_recovery_logs(tmp_path: Path) -> Path:
    app = tmp_path / "app"
    shutil.copytree(EXAMPLE, app, ignore=shutil.ignore_patterns("data", "__pycache__"))
    config = app / "config.toml"
    text = config.read_text()
    # Drop the [[journals.children]] table of recovery logs.
    text, dropped = re.subn(
        r"\[\[journals\.children\]\]\nname = \"examples/word-count/recovery/\".*?\n\]\n",
        "",
        text,
        flags=re.S,
    )
    assert dropped == 1 and "word-count/recovery/count-000" not in text
    config.write_text(text)
    return config


async def counts(group: Cluster) -> dict[str, int]:
    totals: dict[str, int] = {}
    for message in await group.read_committed("examples/word-count/counts"):
        totals[message["word"]] = message["count"]
    return totals


async def test_a_consumer_group_from_a_config_in_one_line(
    consumer_group: OpenGroup, tmp_path: Path
) -> None:
    config = without_declared_recovery_logs(tmp_path)
    async with consumer_group(config) as group:
        assert group.core.spec("examples/word-count/recovery/count-000") is not None
        await group.add_member()
        await group.publish("examples/word-count/lines/part-000", [{"text": "a b a"}])
        with trio.fail_after(30):
            while await counts(group) != {"a": 2, "b": 1}:
                await trio.sleep(0.05)
