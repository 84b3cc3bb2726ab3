"""Providers: one small class per API family, all through one registry."""

from __future__ import annotations

from promptlab.providers.anthropic import AnthropicProvider
from promptlab.providers.base import (
    ErrorKind,
    HttpRequest,
    Provider,
    ProviderRequest,
    ProviderResponse,
)
from promptlab.providers.http import HttpProvider
from promptlab.providers.openai import OpenAIProvider

__all__ = [
    "ErrorKind",
    "HttpRequest",
    "Provider",
    "ProviderRequest",
    "ProviderResponse",
    "get_provider",
    "register_provider",
]

_REGISTRY: dict[str, Provider] = {
    "openai": OpenAIProvider(),
    "anthropic": AnthropicProvider(),
    "http": HttpProvider(),
}


def register_provider(provider: Provider) -> None:
    """Make a provider available to model configs under `provider.name`."""
    _REGISTRY[provider.name] = provider


def get_provider(name: str) -> Provider:
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise KeyError(f"unknown provider '{name}'; use one of: {known}") from None
