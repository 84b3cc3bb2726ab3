from __future__ import annotations

from pathlib import Path

import pytest

from promptlab.errors import UserError
from promptlab.spec import MessageSpec, PromptSpec, Row
from promptlab.templates import Renderer


def prompt(*messages: tuple[str, str], vars: dict[str, object] | None = None) -> PromptSpec:
    return PromptSpec("p", tuple(MessageSpec(r, s) for r, s in messages), vars or {})


def test_row_overrides_prompt_vars_and_row_is_available_whole(tmp_path: Path) -> None:
    r = Renderer(tmp_path)
    p = prompt(("system", "Be {{ tone }}."), ("user", "{{ q }} ({{ row.id }})"),
               vars={"tone": "brief", "q": "default"})
    out = r.render(p, Row("r1", 0, {"q": "Why?", "id": "r1"}))
    assert out == [{"role": "system", "content": "Be brief."},
                   {"role": "user", "content": "Why? (r1)"}]


def test_missing_template_variable_names_the_variable_and_row(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"'country' is undefined.*row 'x7'"):
        Renderer(tmp_path).render(prompt(("user", "Capital of {{ country }}?")),
                                  Row("x7", 0, {}))


def test_single_braces_need_no_escaping_and_raw_blocks_keep_double_braces(
        tmp_path: Path) -> None:
    p = prompt(("user", 'Reply as {"answer": "{{ a }}"}; literal {% raw %}{{ x }}{% endraw %} '
                        "and {{ '{{' }}y}}"))
    [msg] = Renderer(tmp_path).render(p, Row("r", 0, {"a": "42"}))
    assert msg["content"] == 'Reply as {"answer": "42"}; literal {{ x }} and {{y}}'


def test_sandbox_blocks_unsafe_attribute_access(tmp_path: Path) -> None:
    p = prompt(("user", "{{ ''.__class__.__mro__[1].__subclasses__() }}"))
    with pytest.raises(UserError):
        Renderer(tmp_path).render(p, Row("r", 0, {}))


def test_file_templates_record_their_includes(tmp_path: Path) -> None:
    (tmp_path / "base.j2").write_text("Q: {% include 'part.j2' %}")
    (tmp_path / "part.j2").write_text("{{ q }}")
    r = Renderer(tmp_path)
    source = r.load_source("base.j2", "here")
    p = PromptSpec("p", (MessageSpec("user", source, "base.j2"),))
    assert r.render(p, Row("r", 0, {"q": "hi"}))[0]["content"] == "Q: hi"
    assert set(r.loader.sources) == {"base.j2", "part.j2"}


@pytest.mark.parametrize("source", [
    "{{ 'a' * 10**9 }}",
    "{{ 10**9 * ['x'] }}",
    "{{ 7 ** (10 ** 9) }}",
    "{% for i in range(100000) %}{{ 'b' * 1000 }}{% endfor %}",
    # Found by the adversarial review: ways around the '*' bound.
    "{{ ('a' * 9000000) | replace('a', 'a' * 20) | replace('a', 'a' * 10) }}",
    "{{ ('a' * 9000000).replace('a', 'a' * 20) }}",
    "{{ '%0999999999d' % 1 }}",
    "{{ '%*d' % (999999999, 1) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '%0999999999d' | format(1) }}",
    "{{ 'x' | center(999999999) }}",
    "{{ 'x'.ljust(999999999) }}",
    "{{ ('\t' * 1000000).expandtabs(1000) }}",
    "{{ ('a\n' * 5000000) | indent(100) }}",
])
def test_a_template_cannot_build_gigabytes(tmp_path: Path, source: str) -> None:
    # Before the bound these built 1 GB strings (or ran for hours) before any request.
    import resource
    import time
    start, before = time.perf_counter(), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(UserError, match=r"prompt 'p'.*(at most|passed|more than).*fix the"):
        Renderer(tmp_path).render(prompt(("user", source)), Row("r", 0, {}))
    assert time.perf_counter() - start < 5
    grown_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kb < 200_000


def test_bounded_sandbox_still_renders_ordinary_arithmetic(tmp_path: Path) -> None:
    out = Renderer(tmp_path).render(
        prompt(("user", "{{ '-' * 3 }} {{ 2 ** 10 }} {{ [0] * 2 }} {{ 3 * 4 }} {{ 7 % 3 }} "
                        "{{ '%05.1f' % 2.25 }} {{ 'ab' | replace('a', 'x') }} "
                        "{{ '{:>4}'.format(1) }} {{ 'a b' | center(5) }}|{{ 'x\ny' | indent(2) }}"
                        "|{{ '%s-%s' | format(1, 2) }}")), Row("r", 0, {}))
    assert out[0]["content"] == "--- 1024 [0, 0] 12 1 002.2 xb    1  a b |x\n  y|1-2"


@pytest.mark.parametrize("text", ["Answer briefly.", "Answer briefly.\n", "a\r\nb\rc\n\n",
                                  'JSON: {"a": 1} and { braces }', "", "tab\tend  "])
def test_a_message_without_tags_is_the_text_jinja_renders(tmp_path: Path, text: str) -> None:
    # Rendered once, not per row: it must still be exactly what Jinja makes of it (one
    # trailing newline dropped, line ends made \n).
    import jinja2

    expected = jinja2.Environment(keep_trailing_newline=False).from_string(text).render()
    r = Renderer(tmp_path)
    p = prompt(("system", text), ("user", "{{ q }}"))
    for i, q in enumerate(["one", "two"]):
        system, user = r.render(p, Row(f"r{i}", i, {"q": q}))
        assert system["content"] == expected and user["content"] == q
