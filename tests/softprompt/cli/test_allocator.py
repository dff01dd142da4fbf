"""The allocator tuning the softprompt command applies at start-up."""

import platform
import sys

import pytest

from softprompt.cli.allocator import keep_freed_memory


@pytest.mark.skipif(not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc", reason="glibc only")
def test_glibc_accepts_the_thresholds():
    assert keep_freed_memory() is True
