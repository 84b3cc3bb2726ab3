"""Testing helpers: the mock LLM server."""

from promptlab.testing.mock_server import MockConfig, MockServer
from promptlab.testing.mock_wire import mock_reply

__all__ = ["MockConfig", "MockServer", "mock_reply"]
