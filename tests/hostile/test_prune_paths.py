"""`shards prune` removes files only inside the fragment store it names.

The fragment names a prune turns into paths come from a broker's listing:
journal, path postfix and store URL. Whatever they say, the path stays in
the store under `--file-root`; one that would leave it (a `..`, a symbolic
link out of the store) stops the prune with an error naming the fragment,
and nothing is removed.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from gazette_trio.broker.fragments import content_name, sha1_digest
from gazette_trio.protocol import protocol as pb
from gazette_trio.runtime.prune import PruneError, fragment_file

SUM = pb.Sha1Sum(part1=1, part2=2, part3=3)


def _fragment(journal: str, store: str, postfix: str = "") -> pb.Fragment:
    return pb.Fragment(
        journal=journal,
        begin=0,
        end=10,
        sum=SUM,
        backing_store=store,
        path_postfix=postfix,
        compression_codec=pb.CompressionCodec.NONE,
    )


def _name() -> str:
    return content_name(0, 10, sha1_digest(SUM), pb.CompressionCodec.NONE)


def test_a_well_formed_fragment_maps_into_its_store(tmp_path: Path) -> None:
    path = fragment_file(_fragment("logs/shard-0", "file:///stores/a/"), tmp_path)
    assert path == tmp_path / "stores" / "a" / "logs" / "shard-0" / _name()


@pytest.mark.parametrize(
    ("journal", "store", "postfix", "part"),
    [
        ("../../victim", "file:///stores/a/", "", "journal and postfix"),
        ("logs/shard-0", "file:///stores/a/", "../../..", "journal and postfix"),
        ("logs/./shard-0", "file:///stores/a/", "", "journal and postfix"),
        ("logs/shard-0", "file:///stores/../../", "", "store path"),
    ],
)
def test_names_that_leave_the_store_are_refused(
    tmp_path: Path, journal: str, store: str, postfix: str, part: str
) -> None:
    victim = tmp_path / "victim"
    victim.write_text("not a fragment")
    with pytest.raises(PruneError) as caught:
        fragment_file(_fragment(journal, store, postfix), tmp_path / "root")
    assert f"fragment {journal}@0-10: its {part}" in str(caught.value)
    assert "leaves the fragment store; refusing to remove it" in str(caught.value)
    assert victim.read_text() == "not a fragment"


def test_a_symbolic_link_out_of_the_store_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    store = tmp_path / "root" / "stores" / "a"
    (store / "logs").mkdir(parents=True)
    (store / "logs" / "shard-0").symlink_to(outside)
    (outside / _name()).write_text("someone else's file")
    with pytest.raises(PruneError, match="resolves outside its fragment store"):
        fragment_file(_fragment("logs/shard-0", "file:///stores/a/"), tmp_path / "root")
    assert (outside / _name()).read_text() == "someone else's file"
