"""Notebook prose matches the code: a backticked `strategy_engine.x.y`, `name(...)` or `module.name(...)` in a
notebook's markdown names something the package exports (from strategy_engine/_modidx.py), and the keywords a
backticked call shows are parameters of that function."""
import builtins
import importlib
import inspect
import json
import re
from pathlib import Path

import pytest

from strategy_engine._modidx import d as MODIDX

ROOT = Path(__file__).resolve().parent.parent
SYMBOLS = {name for module in MODIDX["syms"].values() for name in module}   # strategy_engine.mod.name[.attr]
MODULES = set(MODIDX["syms"])
SHORT_MODULES = {m.rsplit(".", 1)[-1] for m in MODULES}
LAST: dict[str, list[str]] = {}                                                # name -> its full names
for full in SYMBOLS:
    LAST.setdefault(full.rsplit(".", 1)[-1], []).append(full)
# names the prose may show that are not ours: other libraries' functions, SQL, placeholders in a signature
EXTERNAL = {"EXTRACT", "ewm", "nanstd", "Field", "duckdb.connect", "upload_from_string", "sha256",
            "CREDENTIAL", "fn", "metric"}
TICKED = re.compile(r"`([^`\n]+)`")
CALL = re.compile(r"(?<![\w.])([A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\(([^()]*)")
REF = re.compile(r"\bstrategy_engine(?:\.\w+)+")
KEYWORD = re.compile(r"(?:^|,)\s*([a-z_]\w*)\s*=(?!=)")
DEFINED = re.compile(r"^\s*(?:def|class)\s+(\w+)|^(\w+)\s*=", re.M)


def _notebooks() -> list[Path]:
    return sorted((ROOT / "nbs").rglob("*.ipynb"))


def _defined_in(cells: list[dict]) -> set[str]:
    "Names a notebook's own code cells define (a test helper the prose may show)."
    code = "\n".join("".join(c["source"]) for c in cells if c["cell_type"] == "code")
    return {name for pair in DEFINED.findall(code) for name in pair if name}


def _accepts(full: str, keywords: list[str]) -> bool:
    "Whether the exported function (or class) `full` takes every keyword in `keywords`."
    module_name, _, attr = full.rpartition(".")
    while module_name not in MODULES:                       # a method: Class.method
        module_name, _, outer = module_name.rpartition(".")
        attr = f"{outer}.{attr}"
    obj = importlib.import_module(module_name)
    for part in attr.split("."):
        obj = getattr(obj, part)
    try:
        params = inspect.signature(obj).parameters.values()
    except (TypeError, ValueError):
        return True
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return True
    return set(keywords) <= {p.name for p in params}


def _exported(ref: str) -> bool:
    "Whether `strategy_engine.x.y` is a module, a package or a symbol of the package."
    return ref in MODULES or ref in SYMBOLS or any(m.startswith(ref + ".") for m in MODULES)


def prose_problems(path: Path) -> list[str]:
    "What a notebook's markdown names that the package does not export, or a call's keyword it does not take."
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    defined = _defined_in(cells)
    found = []
    for cell in cells:
        if cell["cell_type"] != "markdown":
            continue
        for span in TICKED.findall("".join(cell["source"])):
            where = f"{path.name}: `{span}`"
            found += [f"{where} names {ref}, which the package does not export"
                      for ref in REF.findall(span) if not _exported(ref)]
            for name, args in CALL.findall(span):
                head, _, last = name.rpartition(".")
                if name in EXTERNAL or last in EXTERNAL or hasattr(builtins, name):
                    continue
                if head and head.split(".")[0] not in SHORT_MODULES | {"strategy_engine"}:
                    continue                                # another library's function, e.g. np.where(...)
                if last not in LAST:
                    if last not in defined:
                        found.append(f"{where} calls {name}(), which the package does not export")
                    continue
                keywords = KEYWORD.findall(args)
                if keywords and not any(_accepts(full, keywords) for full in LAST[last]):
                    found.append(f"{where} passes {', '.join(keywords)} to {name}(), "
                                 "which takes no such parameter")
    return found


def _notebook(tmp_path: Path, name: str, text: str) -> Path:
    nb = {"cells": [{"cell_type": "markdown", "source": [text]}], "metadata": {}, "nbformat": 4,
          "nbformat_minor": 5}
    path = tmp_path / name
    path.write_text(json.dumps(nb))
    return path


def test_the_check_catches_drift(tmp_path):
    """A notebook naming a function that is gone, a keyword a function does not take, or a module that is not
    there fails the check; one naming what exists passes."""
    good = _notebook(tmp_path, "good.ipynb", "`strategy_engine.strategies.base.run_strategy` runs "
                     "`run_strategy(name, bars, config=cfg)`; `launch_once(kind, parameters, KEY)` "
                     "claims a key.")
    assert prose_problems(good) == []
    bad = _notebook(tmp_path, "bad.ipynb", "`launch(..., idempotency_key=KEY)`, `run_strategies(x)` and "
                    "`strategy_engine.gone.f`")
    problems = prose_problems(bad)
    assert len(problems) == 3, problems
    assert "idempotency_key to launch()" in problems[0] and "run_strategies()" in problems[1]
    assert "strategy_engine.gone.f" in problems[2]


@pytest.mark.parametrize("path", _notebooks(), ids=lambda p: p.name)
def test_notebook_prose_names_what_the_package_exports(path):
    assert prose_problems(path) == []
