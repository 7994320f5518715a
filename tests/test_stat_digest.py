"""The Digest header of a stat answer, one spelling for every server
(director/stat/digest.py): XRootD's base64 crc32c and the IANA's hex say the same."""

from __future__ import annotations

import base64

import pytest

from director.demo.fileserver import crc32c
from director.stat.digest import normalise_digest

DATA = b"hello xrootd\n"


def test_a_base64_crc32c_as_xrootd_sends_it_reads_as_the_hex_of_the_same_checksum() -> None:
    sent = base64.b64encode(crc32c(DATA).to_bytes(4, "big")).decode()
    assert normalise_digest(f"crc32c={sent}") == f"crc32c={crc32c(DATA):08x}"
    assert normalise_digest("crc32c=EC3JDw==") == "crc32c=102dc90f"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("crc32c=102dc90f", "crc32c=102dc90f", id="hex-as-sent"),
        pytest.param("CRC32C=102DC90F", "crc32c=102dc90f", id="upper-case-lowered"),
        pytest.param("crc32c=2dc90f", "crc32c=002dc90f", id="leading-zeros-restored"),
        pytest.param("adler32=EC3JDw==", "adler32=102dc90f", id="adler32-base64"),
        pytest.param("crc32=0000abcd", "crc32=0000abcd", id="crc32-hex"),
    ],
)
def test_32_bit_checksums_are_written_as_8_lowercase_hex_digits(header: str, expected: str) -> None:
    assert normalise_digest(header) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        pytest.param("md5=XUFAKrxLKna5cZ2REBfFkg==", "md5=XUFAKrxLKna5cZ2REBfFkg==", id="md5"),
        pytest.param("crc32c=not-a-sum", "crc32c=not-a-sum", id="unreadable-kept"),
        pytest.param("crc32c=123456789", "crc32c=123456789", id="too-long-kept"),
        pytest.param("", "", id="empty"),
    ],
)
def test_other_algorithms_and_unreadable_values_are_kept_as_sent(
    header: str, expected: str
) -> None:
    assert normalise_digest(header) == expected


def test_several_entries_keep_their_order_and_lose_the_spaces() -> None:
    header = "md5=XUFAKrxLKna5cZ2REBfFkg==, crc32c=EC3JDw==,,adler32=0a0b0c0d"
    assert normalise_digest(header) == (
        "md5=XUFAKrxLKna5cZ2REBfFkg==,crc32c=102dc90f,adler32=0a0b0c0d"
    )
