"""Gazette's validation rules for names and tokens, and the error they raise.

Gazette validates every name that crosses its API (journal names, label names
and values, zones, suffixes) against a small set of alphabets, and reports a
failure with a dotted context path such as
`Changes[0].Upsert.Labels[2].Name: not a valid token (a|b)`. This module owns
those alphabets, the length limits, the "clean path" rule for journal names,
and `ValidationError` with its context path, so that every part of
gazette-trio (journal specs, shard specs, requests) words its errors the way
Gazette does.

It does not know about particular messages: label sets live in `labels`,
journal specs in `journal_spec`, request checks beside the server that makes
them.
"""

from __future__ import annotations

import unicodedata

TOKEN_SYMBOLS = "-_+/."
"""Symbols allowed in tokens besides Unicode letters and numbers."""

PATH_SYMBOLS = TOKEN_SYMBOLS + "=%"
"""Symbols allowed in path components (journal names, label values)."""

MIN_JOURNAL_NAME_LEN = 4
MAX_JOURNAL_NAME_LEN = 512


class ValidationError(ValueError):
    """A value does not meet Gazette's rules; `context` says where it sits."""

    def __init__(self, message: str, *context: str) -> None:
        super().__init__(message)
        self.message = message
        self.context: list[str] = list(context)

    def extend(self, context: str) -> ValidationError:
        """Prefix the context path with `context` (innermost first) and return self."""
        self.context.insert(0, context)
        return self

    def within(self, *outer: str) -> ValidationError:
        """Prefix the context path with `outer` (outermost first) and return self."""
        for context in reversed(outer):
            self.extend(context)
        return self

    def __str__(self) -> str:
        if self.context:
            return ".".join(self.context) + ": " + self.message
        return self.message


def go_quote(text: str) -> str:
    """`text` double-quoted with Go's escapes (`%q`), as Gazette's messages quote."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


_GO_ESCAPES = {
    "\a": "\\a",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
    "\v": "\\v",
}


def _is_letter_or_number(ch: str) -> bool:
    if ch.isascii():
        return ch.isalnum()
    return unicodedata.category(ch)[0] in "LN"


def validate_token(value: str, symbols: str, min_len: int, max_len: int) -> None:
    """Letters, numbers and `symbols` only, with a UTF-8 length in [min_len, max_len]."""
    length = len(value.encode())
    if length < min_len or length > max_len:
        raise ValidationError(
            f"invalid length ({length}; expected {min_len} <= length <= {max_len})"
        )
    for ch in value:
        if not _is_letter_or_number(ch) and ch not in symbols:
            raise ValidationError(f"not a valid token ({value})")


def clean_path(path: str) -> str:
    """The shortest equivalent of a slash-separated path, as Go's `path.Clean`."""
    if path == "":
        return "."
    rooted = path.startswith("/")
    parts: list[str] = []
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if parts and parts[-1] != "..":
                parts.pop()
            elif not rooted:
                parts.append("..")
            continue
        parts.append(part)
    out = "/".join(parts)
    if rooted:
        return "/" + out
    return out or "."


def validate_path_component(value: str, min_len: int, max_len: int) -> None:
    """A token over `PATH_SYMBOLS` that is a clean, relative path."""
    validate_token(value, PATH_SYMBOLS, min_len, max_len)
    if value and clean_path(value) != value:
        raise ValidationError(f"must be a clean path ({value})")
    if value.startswith("/"):
        raise ValidationError(f"cannot begin with '/' ({value})")


def split_meta(journal: str) -> tuple[str, str]:
    """Split a `;meta` suffix off a journal name: ("a/b", ";meta") or ("a/b", "")."""
    index = journal.find(";")
    if index < 0:
        return journal, ""
    return journal[:index], journal[index:]


def validate_journal_name(journal: str, *, allow_meta: bool = True) -> None:
    """A journal name: a clean relative path of 4 to 512 bytes, optionally
    followed by a `;meta` path segment (which a JournalSpec may not have)."""
    name, meta = split_meta(journal)
    validate_path_component(name, MIN_JOURNAL_NAME_LEN, MAX_JOURNAL_NAME_LEN)
    if not meta:
        return
    if not allow_meta:
        raise ValidationError(
            f"Name cannot have a metadata path segment ({meta}; expected no segment)"
        )
    try:
        validate_path_component(meta[1:], 1, MAX_JOURNAL_NAME_LEN)
    except ValidationError as exc:
        raise exc.extend("metadata path segment") from None
