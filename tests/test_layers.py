"""The import graph goes one way: entry points -> runs/ -> notebooks -> stages -> domain -> core."""
import json
import subprocess
import sys

import pytest


def imported_by(module: str) -> set[str]:
    "The strategy_engine modules a fresh interpreter has loaded after importing `module`."
    code = (f"import json, sys, {module}; print(json.dumps(sorted(m for m in sys.modules if "
            "m.startswith('strategy_engine'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout))


@pytest.mark.parametrize("module", ["strategy_engine.runs.launcher", "strategy_engine.runs.schedule",
                                    "strategy_engine.runs.records", "strategy_engine.runs.archive"])
def test_the_runner_imports_no_strategy_or_stage_code(module):
    loaded = imported_by(module)
    assert not {m for m in loaded if m.startswith(("strategy_engine.strategies", "strategy_engine.stages",
                                                   "strategy_engine.risk",
                                                   "strategy_engine.backtest"))}, loaded


@pytest.mark.parametrize("module", ["strategy_engine.warehouse", "strategy_engine.data",
                                    "strategy_engine.runs.contract"])
def test_storage_and_the_contract_import_nothing_above_them(module):
    loaded = imported_by(module)
    above = ("strategy_engine.runs.launcher", "strategy_engine.runs.schedule", "strategy_engine.stages",
             "strategy_engine.strategies", "strategy_engine.cli", "strategy_engine.service",
             "strategy_engine.notebooks")
    assert not {m for m in loaded if m.startswith(above)}, loaded
    if module == "strategy_engine.data": assert "strategy_engine.warehouse" not in loaded


def test_stages_use_only_the_runs_contract():
    loaded = imported_by("strategy_engine.stages.daily") | imported_by("strategy_engine.stages.report")
    assert {m for m in loaded if m.startswith("strategy_engine.runs")} <= {
        "strategy_engine.runs",
        "strategy_engine.runs.contract",
    }, loaded
