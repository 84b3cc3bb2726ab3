"""The Jinja2 sandbox every template renders in, bounded in what one render may build.

Jinja2's sandbox stops attribute escapes and caps ``range()``, but ``{{ 'a' * 10**9 }}``,
``{{ 7 ** 10**9 }}``, ``{{ s | replace('a', 'a' * 20) }}`` or ``{{ '%0999999999d' % 1 }}``
would still build gigabytes (or run for hours) before a single request is sent. Here each
operation that can multiply its input (``*``, ``**``, ``%`` and ``format`` widths, the
``replace``, ``center`` and ``indent`` filters, and the str methods ``replace``,
``center``, ``ljust``, ``rjust``, ``zfill``, ``expandtabs`` and ``format``) is checked
before it runs: it may build at most `MAX_VALUE` characters, items or digits; and one
rendered text is at most `MAX_OUTPUT` characters. Past that the render fails with a
template error naming the limit.
"""

from __future__ import annotations

import math
import re
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.filters import do_center, do_indent, do_replace
from jinja2.sandbox import SandboxedEnvironment
from jinja2.utils import pass_eval_context

__all__ = ["MAX_OUTPUT", "MAX_VALUE", "BoundedSandbox", "render_bounded"]

MAX_VALUE = 10_000_000
MAX_OUTPUT = 50_000_000


def _size(value: Any) -> int | None:
    return len(value) if isinstance(value, str | bytes | list | tuple) else None


# A width or precision in a %-format or a format spec: '%-0999999999d', '{:>999999999}'.
_WIDTH = re.compile(r"[%:.<>^=+\- #0]([0-9]{8,})")


def _refuse(what: str, size: int) -> None:
    if size > MAX_VALUE:
        raise SecurityError(f"{what} would build {size:,} characters; a template may build "
                            f"at most {MAX_VALUE:,}")


def _check_format(fmt: Any) -> None:
    if isinstance(fmt, str):
        for digits in _WIDTH.findall(fmt):
            _refuse("a format width", int(digits))


def _replaced_size(s: Any, old: Any, new: Any, count: Any = None) -> int:
    s, old, new = str(s), str(old), str(new)
    n = (len(s) + 1 if not old else s.count(old))
    if isinstance(count, int) and count >= 0:
        n = min(n, count)
    return len(s) + n * max(0, len(new) - len(old))


@pass_eval_context
def _replace(eval_ctx: Any, s: Any, old: Any, new: Any, count: Any = None) -> Any:
    _refuse("replace", _replaced_size(s, old, new, count))
    return do_replace(eval_ctx, s, old, new, count)


def _center(value: Any, width: Any = 80) -> str:
    if isinstance(width, int):
        _refuse("center", width)
    return do_center(value, width)


def _indent(s: Any, width: Any = 4, first: bool = False, blank: bool = False) -> str:
    pad = width if isinstance(width, int) else len(str(width))
    _refuse("indent", len(str(s)) + pad * (str(s).count("\n") + 1))
    return do_indent(s, width, first, blank)


def _check_method(obj: Any, args: tuple[Any, ...]) -> None:
    """Refuse a str method call that would build more than `MAX_VALUE` characters."""
    target = getattr(obj, "__self__", None)
    if not isinstance(target, str):
        return
    name = getattr(obj, "__name__", "")
    if name == "replace" and len(args) >= 2:
        _refuse("replace", _replaced_size(target, args[0], args[1], *args[2:3]))
    elif name in ("center", "ljust", "rjust", "zfill") and args and isinstance(args[0], int):
        _refuse(name, args[0])
    elif name == "expandtabs":
        size = args[0] if args and isinstance(args[0], int) else 8
        _refuse(name, len(target) + target.count("\t") * max(size, 0))
    elif name in ("format", "format_map"):
        _check_format(target)


class BoundedSandbox(SandboxedEnvironment):
    """A sandbox whose multiplying operations refuse results beyond `MAX_VALUE`."""

    intercepted_binops = frozenset({"*", "**", "%"})

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.filters.update(replace=_replace, center=_center, indent=_indent)
        plain_format = self.filters["format"]

        def format_filter(value: Any, *args: Any, **kwargs: Any) -> str:
            _check_format(value)
            return str(plain_format(value, *args, **kwargs))
        self.filters["format"] = format_filter

    def wrap_str_format(self, value: Any) -> Any:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        template = value.__self__

        def checked(*args: Any, **kwargs: Any) -> Any:
            _check_format(template)
            return wrapped(*args, **kwargs)
        return checked

    def call(__self, __context: jinja2.runtime.Context, __obj: Any,  # noqa: N805
             *args: Any, **kwargs: Any) -> Any:
        _check_method(__obj, args)
        return super().call(__context, __obj, *args, **kwargs)

    def call_binop(self, context: jinja2.runtime.Context, operator: str,
                   left: Any, right: Any) -> Any:
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                size = _size(seq)
                if size is not None and isinstance(times, int) and size * times > MAX_VALUE:
                    raise SecurityError(f"'*' would build {size * times:,} items; a template "
                                        f"may build at most {MAX_VALUE:,}")
        elif operator == "%":
            _check_format(left)
            for value in (right if isinstance(right, tuple) else (right,)):
                if isinstance(value, int) and "*" in str(left):
                    _refuse("a format width", value)
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
