"""pytest set-up for the training companion: puts python/ on sys.path and locates the data."""
import os
import sys

import pytest

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))

DATA_DIR = os.environ.get("CDL_DATA_DIR", os.path.normpath(os.path.join(ROOT, "..", "shared", "data")))


@pytest.fixture
def data_dir():
    if not os.path.isdir(os.path.join(DATA_DIR, "mnist")):
        pytest.skip("datasets not found at %s (set CDL_DATA_DIR)" % DATA_DIR)
    return DATA_DIR
