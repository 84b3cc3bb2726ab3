"""Experiment configuration: the schema and how configs are composed and validated."""

from promptlab.config.loading import LoadedConfig, find_experiments_dir, load, source_file
from promptlab.config.schema import ExperimentConfig, ModelConfig, PromptConfig

__all__ = [
    "ExperimentConfig",
    "LoadedConfig",
    "ModelConfig",
    "PromptConfig",
    "find_experiments_dir",
    "load",
    "source_file",
]
