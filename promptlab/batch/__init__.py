"""The batch path: trials sent through the providers' batch APIs at the batch price
(OpenAI Batch, Anthropic Message Batches), durable across crashes."""

from promptlab.batch.choice import batched_models
from promptlab.batch.executor import BatchExecutor, BatchFailed, cancel_batches, run_batched

__all__ = ["BatchExecutor", "BatchFailed", "batched_models", "cancel_batches", "run_batched"]
