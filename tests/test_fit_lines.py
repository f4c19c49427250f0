"""tools/fit_lines.py: each fix keeps the AST, fits the line, leaves other lines alone, is idempotent."""
import ast
import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("fit_lines", ROOT / "tools" / "fit_lines.py")
fit_lines = importlib.util.module_from_spec(_spec)
sys.modules["fit_lines"] = fit_lines  # dataclasses look their module up there
_spec.loader.exec_module(fit_lines)

LONG_WORDS = " ".join(f"word{i}" for i in range(30))  # 209 characters


def fitted(src: str, kinds: set[str] | None = None) -> str:
    "Fit `src`, check the invariants every fix keeps, and return the new text."
    res = fit_lines.fit(src)
    assert ast.dump(ast.parse(res.text)) == ast.dump(ast.parse(src))
    assert all(len(line) <= 110 for line in res.text.split("\n")), res.text
    assert fit_lines.fit(res.text).text == res.text  # idempotent
    if kinds is not None:
        assert set(res.kinds) == kinds, res.kinds
    return res.text


def test_a_comment_line_is_wrapped_and_a_directive_left_alone():
    src = f"#| export\nx = 1\n# {LONG_WORDS}\n"
    out = fitted(src, {"comment wrapped"})
    assert out.startswith("#| export\nx = 1\n# word0 ")
    assert " ".join(line[2:] for line in out.split("\n")[2:] if line) == LONG_WORDS
    directive = "#| " + "x" * 120 + "\n"
    res = fit_lines.fit(directive)
    assert res.text == directive and res.left == [(1, 123, "nbdev directive")]


def test_a_trailing_comment_moves_above_its_line_and_the_code_stays_byte_identical():
    code = "result = compute(alpha, beta, gamma)"
    src = f"def f():\n    {code}   # {LONG_WORDS[:90]}\n    return result\n"
    out = fitted(src, {"comment moved above"})
    lines = out.split("\n")
    assert lines[1] == f"    # {LONG_WORDS[:90]}"
    assert lines[2:4] == [f"    {code}", "    return result"]


def test_a_long_one_line_if_is_unfolded_and_a_short_one_kept():
    long_if = 'if missing: raise ValueError("' + "m" * 80 + '")'
    src = f"def f(missing):\n    if not missing: return None\n    {long_if}\n"
    out = fitted(src)
    assert "    if not missing: return None\n" in out  # the short one-statement `if` is house style
    assert '    if missing:\n        raise ValueError("' in out


def test_statements_joined_by_a_semicolon_go_on_lines_of_their_own():
    parts = ["alpha_values = list(range(1000))", "beta_values = list(range(2000))",
             "gamma_values = alpha_values + beta_values", "delta = len(gamma_values)"]
    src = "; ".join(parts) + "\n"
    assert fitted(src, {"statements split at `;`"}).split("\n")[:4] == parts


def test_call_arguments_are_refilled_aligned_after_the_open_bracket():
    args = ", ".join(f'"--flag{i}"' for i in range(14))
    src = f"r = run_cli({args}, env=env)\n"
    out = fitted(src, {"brackets refilled"})
    first, second = out.split("\n")[:2]
    assert first.startswith('r = run_cli("--flag0", ') and second.startswith(" " * len("r = run_cli(") + '"')


def test_a_signature_with_parameter_comments_keeps_them_beside_their_parameters():
    src = ("def backtest(bars,        # the bars\n             weights, cost_bps=None, name='backtest', "
           "books=None, extra_option_with_a_long_name=1):   # options\n    return bars\n")
    out = fitted(src)
    assert "bars,  " in out and "# the bars" in out.split("\n")[0]
    assert any(line.rstrip().endswith("# options") and "extra_option_with_a_long_name=1" in line
               for line in out.split("\n"))


def test_an_f_string_is_split_at_spaces_with_f_only_where_a_piece_has_a_placeholder():
    words = " ".join(["plain"] * 16)
    src = f'raise ValueError(f"{{name}}: {words} and {{{{literal braces}}}} then {words}.")\n'
    out = fitted(src)
    pieces = [line.strip().rstrip(")") for line in out.split("\n") if line.strip()]
    assert pieces[0].startswith('raise ValueError(f"{name}: ')
    assert all(p.startswith('"') for p in pieces[1:]) and "{literal braces}" in out  # no f: unescaped
    message = out.strip()[len("raise ValueError("):-1]
    original = src.strip()[len("raise ValueError("):-1]
    assert eval(f"({message})", {"name": "x"}) == eval(original, {"name": "x"})


def test_a_docstring_is_left_long_and_reported():
    src = f'def f():\n    "{LONG_WORDS}"\n'
    res = fit_lines.fit(src)
    assert res.text == src and res.left == [(2, len(LONG_WORDS) + 6, "docstring or string statement")]


def test_a_change_that_would_alter_the_ast_is_refused():
    before = "x = 1\n"
    refused = fit_lines.checked(fit_lines.Result("x = 2\n", fixed=1), before, "cell 0")
    assert refused.text == before and "change refused" in refused.left[0][2]


@pytest.mark.parametrize("suffix", [".py", ".ipynb"])
def test_check_exits_1_listing_long_lines_then_0_after_a_fix(tmp_path, capsys, suffix):
    code = f"def f():\n    return 1   # {LONG_WORDS[:100]}\n"
    path = tmp_path / f"x{suffix}"
    if suffix == ".py":
        path.write_text(code)
    else:
        cell = {"cell_type": "code", "execution_count": None, "id": "a1", "metadata": {}, "outputs": [],
                "source": code.splitlines(keepends=True)}
        path.write_text(json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}))
    assert fit_lines.main(["--check", str(path)]) == 1
    assert "line 2 (" in capsys.readouterr().out
    assert fit_lines.main([str(path)]) == 0
    assert fit_lines.main(["--check", str(path)]) == 0
    before = path.read_text()
    fit_lines.main([str(path)])
    assert path.read_text() == before  # a second run changes nothing


def test_the_tree_fits():
    "What `make lint` checks: notebooks, tests, bench, tools, scripts and generated modules fit 110 columns."
    assert fit_lines.main(["--check"]) == 0
