"""gazette-trio's List watch on Gazette's brokers: journals come and go while it runs.

A publisher's partitions (`open_partitions`) follow a long-lived List watch,
as Gazette's own publishers do. On Gazette's brokers, journals that `gazctl
journals apply` creates or deletes while the watch runs appear in and
vanish from the partitions, and a selector matching more than a thousand
journals (several List response messages each time) is followed whole.
"""

from __future__ import annotations

import uuid
from pathlib import Path

import trio

from gazette_trio import aio
from gazette_trio.broker import GrpcJournalClient
from gazette_trio.message import Partitions, open_partitions

from .conftest import Gazctl, GazetteCluster
from .gazctl_output import leaves, yaml_doc

FRAGMENT = "{length: 1048576, compression_codec: NONE, refresh_interval: 1m}"


async def apply(ctl: Gazctl, tmp_path: Path, text: str) -> None:
    specs = tmp_path / f"journals-{uuid.uuid4().hex[:6]}.yaml"
    specs.write_text(text)
    done = await trio.to_thread.run_sync(
        lambda: ctl("journals", "apply", f"--specs={specs}", "--max-txn-size=100")
    )
    done.ok()


async def names_become(partitions: Partitions, expected: list[str], what: str) -> None:
    with trio.move_on_after(30):
        while [j.name for j in partitions.journals] != expected:
            await trio.sleep(0.05)
        return
    names = [j.name for j in partitions.journals]
    raise AssertionError(f"{what}: partitions are {names[:5]}... ({len(names)}), not as expected")


async def test_partitions_follow_journals_gazctl_creates_and_deletes(
    gazctl: Gazctl, gazette: GazetteCluster, tmp_path: Path
) -> None:
    ctl = gazctl.at(broker=gazette.address)
    base = f"watch/{uuid.uuid4().hex[:8]}/"
    await apply(
        ctl,
        tmp_path,
        f"name: {base}\nreplication: 1\nlabels: [{{name: topic, value: {base[6:-1]}}}]\n"
        f"fragment: {FRAGMENT}\nchildren:\n- name: {base}part-000\n",
    )
    async with aio.asyncio_island(), aio.Channel(gazette.endpoint) as channel:
        client = GrpcJournalClient(channel, timeout=30)
        async with open_partitions(client, f"topic={base[6:-1]}") as partitions:
            await names_become(partitions, [f"{base}part-000"], "at start")

            await apply(
                ctl,
                tmp_path,
                f"name: {base}\nreplication: 1\nlabels: [{{name: topic, value: {base[6:-1]}}}]\n"
                f"fragment: {FRAGMENT}\nchildren:\n- name: {base}part-001\n",
            )
            await names_become(
                partitions, [f"{base}part-000", f"{base}part-001"], "after gazctl created one"
            )

            listed = await trio.to_thread.run_sync(
                lambda: ctl("journals", "list", "-l", f"name={base}part-000", "-o", "yaml")
            )
            revision = leaves(yaml_doc(listed.ok()))[f"{base}part-000"]["revision"]
            await apply(
                ctl, tmp_path, f"name: {base}part-000\nrevision: {revision}\ndelete: true\n"
            )
            await names_become(partitions, [f"{base}part-001"], "after gazctl deleted one")

            # Past Gazette's page size: the watch's snapshots span several messages.
            many = [f"{base}many-{n:05d}" for n in range(1050)]
            await apply(
                ctl,
                tmp_path,
                f"name: {base}\nreplication: 1\nlabels: [{{name: topic, value: {base[6:-1]}}}]\n"
                f"fragment: {FRAGMENT}\nchildren:\n" + "".join(f"- name: {n}\n" for n in many),
            )
            await names_become(partitions, [*many, f"{base}part-001"], "after 1,050 more")
