"""The Jinja2 sandbox every template renders in, bounded in what one render may build.

Jinja2's sandbox stops attribute escapes and caps ``range()``, but ``{{ 'a' * 10**9 }}``
or ``{{ 9 ** 9 ** 9 }}`` would still build gigabytes (or run for hours) before a single
request is sent. Here one ``*`` or ``**`` may build at most `MAX_VALUE` characters, items
or digits, and one rendered text is at most `MAX_OUTPUT` characters; past that the
render fails with a template error naming the limit.
"""

from __future__ import annotations

import math
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

__all__ = ["MAX_OUTPUT", "MAX_VALUE", "BoundedSandbox", "render_bounded"]

MAX_VALUE = 10_000_000
MAX_OUTPUT = 50_000_000


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple) else None


class BoundedSandbox(SandboxedEnvironment):
    """A sandbox whose ``*`` and ``**`` refuse results beyond `MAX_VALUE`."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: jinja2.runtime.Context, operator: str,
                   left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                size = _size(seq)
                if size is not None and isinstance(times, int) and size * times > MAX_VALUE:
                    raise SecurityError(f"'*' would build {size * times:,} items; a template "
                                        f"may build at most {MAX_VALUE:,}")
        elif (operator == "**" and isinstance(left, int) and isinstance(right, int)
              and abs(left) > 1 and right > 0
              and right * math.log10(abs(left)) > MAX_VALUE):
            raise SecurityError(f"'**' would build a number of more than {MAX_VALUE:,} digits")
        return super().call_binop(context, operator, left, right)


def render_bounded(template: jinja2.Template, variables: dict[str, Any]) -> str:
    """Render, refusing once the text passes `MAX_OUTPUT` characters (a loop of big parts)."""
    parts: list[str] = []
    total = 0
    for chunk in template.generate(variables):
        total += len(chunk)
        if total > MAX_OUTPUT:
            raise SecurityError(f"the rendered text passed {MAX_OUTPUT:,} characters")
        parts.append(chunk)
    return "".join(parts)
