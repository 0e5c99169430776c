"""Fragments as Gazette names and sums them.

A fragment is a contiguous byte range [begin, end) of a journal, identified
by its offsets and the SHA-1 of its content. Gazette writes the digest into
a `SHA1Sum` message as three big-endian parts (8 + 8 + 4 bytes) and names
fragment files `<begin>-<end>-<sha1>.<ext>` with 16 hex digits per offset.
This module owns those conversions, for the server's files and for clients
that report commit ranges; it stores and reads nothing.
"""

from __future__ import annotations

from ..protocol import protocol as pb

_EXTENSIONS = {
    pb.CompressionCodec.NONE: ".raw",
    pb.CompressionCodec.GZIP: ".gz",
    pb.CompressionCodec.ZSTANDARD: ".zst",
    pb.CompressionCodec.SNAPPY: ".sz",
    pb.CompressionCodec.GZIP_OFFLOAD_DECOMPRESSION: "",
}


def sha1_sum(digest: bytes) -> pb.Sha1Sum:
    """A 20-byte SHA-1 digest as a SHA1Sum message."""
    if len(digest) != 20:
        raise ValueError(f"a SHA-1 digest has 20 bytes, not {len(digest)}")
    return pb.Sha1Sum(
        part1=int.from_bytes(digest[0:8], "big"),
        part2=int.from_bytes(digest[8:16], "big"),
        part3=int.from_bytes(digest[16:20], "big"),
    )


def sha1_digest(sum: pb.Sha1Sum | None) -> bytes:
    """The 20-byte digest of a SHA1Sum message (zeros if absent)."""
    if sum is None:
        return bytes(20)
    return (
        sum.part1.to_bytes(8, "big") + sum.part2.to_bytes(8, "big") + sum.part3.to_bytes(4, "big")
    )


def content_name(
    begin: int,
    end: int,
    digest: bytes,
    codec: pb.CompressionCodec = pb.CompressionCodec.NONE,
) -> str:
    """Gazette's content-addressed file name of a fragment, e.g.
    `0000000000000000-0000000000000400-<40 hex>.raw`."""
    return f"{begin:016x}-{end:016x}-{digest.hex()}{_EXTENSIONS[codec]}"
