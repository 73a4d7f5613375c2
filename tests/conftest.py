"""Shared fixtures: tiny models written in the test session and a local Hub-compatible server."""
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.fixtures.models import *  # noqa: E402,F401,F403
from tests.fixtures.hub import *  # noqa: E402,F401,F403
from tests.fixtures.tuned import *  # noqa: E402,F401,F403

import pytest  # noqa: E402
import torch  # noqa: E402


@pytest.fixture(scope="module")
def one_thread():
    """Torch on one thread for a whole test module (``pytestmark = pytest.mark.usefixtures("one_thread")``):
    tiny models run fastest on one thread, and two threads fight over a busy 2-core machine."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
