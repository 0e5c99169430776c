"""BaseApplication's defaults: the declared message type, a finalize_txn
that does nothing, and clear errors for what a subclass forgot."""

from __future__ import annotations

import pytest

from gazette_trio import Application, BaseApplication, JSONMessage, MemoryStore
from gazette_trio.protocol import protocol as pb

SPEC = pb.JournalSpec(name="events/part-000")


class Declared(BaseApplication[MemoryStore, JSONMessage]):
    message_type = JSONMessage


class Undeclared(BaseApplication[MemoryStore, JSONMessage]):
    pass


def test_every_journal_decodes_into_the_declared_message_type() -> None:
    assert Declared().new_message(SPEC) is JSONMessage


def test_an_undeclared_message_type_is_an_error_naming_the_class_and_journal() -> None:
    with pytest.raises(TypeError, match=r"Undeclared declares no message_type.*events/part-000"):
        Undeclared().new_message(SPEC)


async def test_finalize_txn_does_nothing_by_default() -> None:
    assert await Declared().finalize_txn(None, None, None) is None  # type: ignore[arg-type,func-returns-value]


async def test_a_missing_callback_says_which() -> None:
    with pytest.raises(NotImplementedError, match="Declared must define new_store"):
        await Declared().new_store(None, None)  # type: ignore[arg-type]
    with pytest.raises(NotImplementedError, match="Declared must define consume_message"):
        await Declared().consume_message(None, None, None, None)  # type: ignore[arg-type]


def test_a_subclass_is_an_application() -> None:
    assert isinstance(Declared(), Application)
