"""Shared fixtures: tiny models written in the test session and a local Hub-compatible server."""
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from tests.fixtures.models import *  # noqa: E402,F401,F403
from tests.fixtures.hub import *  # noqa: E402,F401,F403
