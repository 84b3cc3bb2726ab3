"""The runner: concurrency, limits, retries and recording."""

from promptlab.runner.engine import Runner, RunStats
from promptlab.runner.retry import RetryPolicy, retry_after_s

__all__ = ["RetryPolicy", "RunStats", "Runner", "retry_after_s"]
