"""Shared fixtures: the real NSE sample, the installed console script, small notebook templates."""
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from strategy_engine.core import sample_data_dir

ROOT = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "strategy-engine"


@pytest.fixture(scope="session", autouse=True)
def default_warehouse(tmp_path_factory):
    """Runs not pointed elsewhere index records in a throwaway warehouse, never the checkout's runs/."""
    import os
    if "STRATEGY_ENGINE_WAREHOUSE" not in os.environ:
        os.environ["STRATEGY_ENGINE_WAREHOUSE"] = (
            f"duckdb:///{tmp_path_factory.mktemp('default-warehouse')}/wh.duckdb"
        )
    yield os.environ["STRATEGY_ENGINE_WAREHOUSE"]


@pytest.fixture(scope="session")
def nse_dir() -> Path:
    path = sample_data_dir()
    if path is None:
        pytest.skip("the real NSE sample (../shared/data/nse) is not beside the repository")
    return path


def run_cli(*args: str, timeout: float = 300, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run the installed `strategy-engine` console script as a user would."""
    return subprocess.run([str(CLI), *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          cwd=ROOT, env=env)


def run_cli_many(calls: list[tuple[tuple, dict | None]],
                 timeout: float = 300) -> list[subprocess.CompletedProcess]:
    """Run independent `strategy-engine` commands at once (each `(args, env)`), results in order: the suite's
    fast path for cases that share nothing (their own archive and warehouse each)."""
    procs = [subprocess.Popen([str(CLI), *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=ROOT, env=env) for args, env in calls]
    done = []
    for (args, _), proc in zip(calls, procs):
        out, err = proc.communicate(timeout=timeout)
        done.append(subprocess.CompletedProcess([str(CLI), *map(str, args)], proc.returncode, out, err))
    return done


def make_template(path: Path, parameters: str, *cells: str) -> Path:
    """Write a notebook with a cell tagged `parameters` followed by code cells."""
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    p = nbformat.v4.new_code_cell(parameters)
    p.metadata["tags"] = ["parameters"]
    nb.cells = [p, *(nbformat.v4.new_code_cell(c) for c in cells)]
    nbformat.write(nb, str(path))
    return path


def processes_with_env(name: str, value: str) -> list[int]:
    """Live processes whose environment holds `name=value` (Linux /proc), e.g. kernels left running."""
    needle, found = f"{name}={value}".encode(), []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit(): continue
        try: env = (d / "environ").read_bytes()
        except OSError: continue                              # gone meanwhile, or not ours to read
        if needle in env.split(b"\0"): found.append(int(d.name))
    return found
