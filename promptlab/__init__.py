"""promptlab: declarative prompt experiments with results tracking.

The public Python surface is small: `load_results` for notebooks, and the error types.
Everything else is the `promptlab` command line.
"""

from promptlab.errors import ConfigError, PromptlabError, ProviderError, UserError
from promptlab.results import Results, load_results

__version__ = "0.1.0"

__all__ = ["ConfigError", "PromptlabError", "ProviderError", "Results", "UserError",
           "__version__", "load_results"]
