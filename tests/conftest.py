"""Shared fixtures: tiny random models are built once per session (they are deterministic)."""

from __future__ import annotations

import pytest

from selfbake.models import load


@pytest.fixture(scope="session")
def llama():
    return load("random:llama-tiny", device="cpu")


@pytest.fixture(scope="session")
def qwen2():
    return load("random:qwen2-tiny", device="cpu")
