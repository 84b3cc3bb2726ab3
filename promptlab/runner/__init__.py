"""The runner: concurrency, limits, retries and recording."""

from promptlab.runner.engine import Runner, RunStats, redact_headers
from promptlab.runner.retry import RetryPolicy, retry_after_s

__all__ = ["RetryPolicy", "RunStats", "Runner", "redact_headers", "retry_after_s"]
