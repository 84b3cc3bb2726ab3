"""The one exception hierarchy of promptlab.

    PromptlabError
    ├── UserError          bad input: config, template, dataset, missing key, unknown run.
    │   │                  Printed as one line, exit code 2, never a traceback.
    │   └── ConfigError    the composed experiment config does not validate
    └── ProviderError      a provider could not make sense of a response (recorded, not raised
                           out of the runner)

Anything else that escapes is a bug and prints its traceback.
"""

from __future__ import annotations

__all__ = ["PromptlabError", "UserError", "ConfigError", "ProviderError"]


class PromptlabError(Exception):
    """Base of every error promptlab raises on purpose."""


class UserError(PromptlabError):
    """A mistake the user can fix; the message says where and how."""

    exit_code = 2


class ConfigError(UserError):
    """The experiment config does not validate."""


class ProviderError(PromptlabError):
    """A response could not be parsed; `kind` says whether retrying may help."""

    def __init__(self, message: str, kind: str = "transient") -> None:
        super().__init__(message)
        self.kind = kind
