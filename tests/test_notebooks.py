"""papermill execution through `strategy_engine.notebooks`: outcomes, parameters, kernels."""
import json
import os
import signal
import subprocess
import sys
import time

import nbformat
import pytest

from strategy_engine import notebooks
from strategy_engine.core import ConfigError, UnknownNameError
from strategy_engine.notebooks import boot_kernel_early, execute_notebook, notebook_error, template_parameters

from conftest import ROOT, make_template, processes_with_env


def test_parameter_values_arrive_unchanged(tmp_path):
    """RELIABILITY 10: quotes, backslashes, newlines and injection attempts arrive as the same string."""
    tpl = make_template(tmp_path / "t.ipynb", 'text = "default"\nitems = []\nout = ""',
                        "import json\nopen(out, 'w').write(json.dumps({'text': text, 'items': items}))")
    nasty = 'quote " single \' backslash \\ newline \n tab \t unicode ₹ }} {{ $x'
    result = tmp_path / "result.json"
    ex = execute_notebook(tpl, tmp_path / "o.ipynb",
                          {"text": nasty, "items": [nasty, {"k": nasty}], "out": str(result)})
    assert ex.status == "succeeded", ex.error
    assert json.loads(result.read_text()) == {"text": nasty, "items": [nasty, {"k": nasty}]}


def test_the_record_is_written_as_the_run_starts_and_ends_not_at_every_cell(tmp_path, monkeypatch):
    """papermill alone writes the whole output notebook at each cell's start and end (14 writes for these six
    cells, measured); a run writes it as it starts and once it has ended, holding every cell's output."""
    import papermill.engines as pe
    tpl = make_template(tmp_path / "t.ipynb", "x = 1", *(f"print(x + {i})" for i in range(4)))
    writes, real = [], pe.write_ipynb
    monkeypatch.setattr(pe, "write_ipynb", lambda nb, path: (writes.append(path), real(nb, path)))
    ex = execute_notebook(tpl, tmp_path / "out.ipynb", {"x": 41}, cwd=tmp_path)
    cells = nbformat.read(tmp_path / "out.ipynb", as_version=4).cells        # with papermill's injected cell
    assert ex.status == "succeeded" and len(cells) == 6, ex
    assert [c.outputs[0]["text"] for c in cells[2:]] == ["41\n", "42\n", "43\n", "44\n"]
    assert len(writes) == 2, writes


def test_unknown_names_refused_before_papermill_runs(tmp_path):
    tpl = make_template(tmp_path / "t.ipynb", "a = 1", "b = 2")
    with pytest.raises(UnknownNameError, match="Did you mean 'a'"):
        execute_notebook(tpl, tmp_path / "o.ipynb", {"a_": 2})
    with pytest.raises(ConfigError, match="not a plain JSON value"):
        execute_notebook(tpl, tmp_path / "o.ipynb", {"a": {1, 2}})
    assert not (tmp_path / "o.ipynb").exists()


def test_failing_cell_is_recorded_and_output_written(tmp_path):
    tpl = make_template(tmp_path / "t.ipynb", "x = 1", "raise ValueError('boom at cell 2')", "print('never')")
    ex = execute_notebook(tpl, tmp_path / "o.ipynb")
    assert ex.status == "failed" and "ValueError: boom at cell 2" in ex.error
    assert notebook_error(ex.output) == "ValueError: boom at cell 2"


def test_timeout_is_its_own_status(tmp_path):
    """RELIABILITY 8: a cell past the timeout is its own status; the notebook is kept."""
    tpl = make_template(tmp_path / "t.ipynb", "x = 1", "import time\ntime.sleep(30)")
    ex = execute_notebook(tpl, tmp_path / "o.ipynb", timeout=3)
    assert ex.status == "timeout" and ex.output.exists() and ex.seconds < 25
    # the record says where and why it stopped
    assert "exceeded 3 s" in notebook_error(ex.output)


def test_production_templates_keep_their_parameters_tag():
    """nbdev_clean must not strip the tag (settings.ini allowed_cell_metadata_keys = tags)."""
    for tpl in (ROOT / "nbs" / "production").glob("*.ipynb"):
        nb = nbformat.read(tpl, as_version=4)
        tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        assert len(tagged) == 1, tpl
        assert nb.metadata["kernelspec"]["name"] == "python3", tpl
        assert template_parameters(tpl)


def test_a_kernel_booted_early_runs_the_notebook_preloaded_and_is_killed_after(tmp_path):
    tpl = make_template(tmp_path / "t.ipynb", 'out = ""',
                        "import json, os, sys\nseen = {'pid': os.getpid(), 'cwd': os.getcwd(), 'preloaded': "
                        "'tabnanny' in sys.modules}\njson.dump(seen, open(out, 'w'))",
                        "import tabnanny",
                        "import no_such_module_anywhere")
    boot_kernel_early(tpl, tmp_path)
    pid = notebooks._early[notebooks._early_key(tpl, tmp_path)].provisioner.pid
    ex = execute_notebook(tpl, tmp_path / "o.ipynb", {"out": str(tmp_path / "r.json")}, cwd=tmp_path)
    seen = json.loads((tmp_path / "r.json").read_text())
    # the early kernel, its imports done
    assert seen == {"pid": pid, "cwd": str(tmp_path.resolve()), "preloaded": True}
    # a failed preload: its cell raises
    assert ex.status == "failed" and ex.error.startswith("ModuleNotFoundError")
    with pytest.raises(ProcessLookupError): os.kill(pid, 0)                            # killed and reaped
    assert not notebooks._early


def test_the_kernel_is_awaited_by_kernel_ready_not_by_jupyter_clients_quiet_wait(tmp_path, monkeypatch):
    """nbclient's setup runs our `_kernel_ready` (jupyter_client's `wait_for_ready` then waits 0.2 s for IOPub
    to fall silent): nbclient binds its synchronous `start_new_kernel_client` to its own coroutine, so an
    override of the coroutine alone is never called."""
    seen = []
    real = notebooks._kernel_ready

    async def ready(kc, km, timeout):
        seen.append(timeout)
        return await real(kc, km, timeout)

    monkeypatch.setattr(notebooks, "_kernel_ready", ready)
    tpl = make_template(tmp_path / "t.ipynb", "x = 1", "print(x)")
    ex = execute_notebook(tpl, tmp_path / "o.ipynb", {"x": 2})
    assert ex.status == "succeeded" and len(seen) == 1, (ex, seen)
    assert nbformat.read(ex.output, as_version=4).cells[-1].outputs[0]["text"] == "2\n"


def test_a_kernel_that_dies_is_a_failed_run_with_its_notebook_kept(tmp_path):
    """RELIABILITY 8: a dead kernel ends the run failed, notebook kept."""
    tpl = make_template(tmp_path / "t.ipynb", "x = 1", "print('before the crash')", "import os\nos._exit(3)",
                        "print('never')")
    # no exception out of the launcher's call
    ex = execute_notebook(tpl, tmp_path / "o.ipynb")
    assert ex.status == "failed" and ex.error.startswith("DeadKernelError"), ex
    cells = nbformat.read(ex.output, as_version=4).cells
    # kept as far as it got
    assert cells[1].outputs[0]["text"] == "before the crash\n" and not cells[3].outputs
    # the cell that was running says why
    assert cells[2].outputs[-1]["ename"] == "DeadKernelError"


def test_sigterm_stops_the_run_not_the_process(tmp_path):
    """Cloud Run's task timeout: SIGTERM, then SIGKILL; the run ends `killed`, notebook kept, no kernel."""
    started = tmp_path / "started"
    tpl = make_template(tmp_path / "t.ipynb", 'marker = ""', "print('working')",
                        "import pathlib, time\npathlib.Path(marker).touch()\ntime.sleep(60)",
                        "print('never')")
    code = ("import dataclasses, json, sys\nfrom strategy_engine.notebooks import execute_notebook\n"
            "ex = execute_notebook(sys.argv[1], sys.argv[2], {'marker': sys.argv[3]})\n"
            "print(json.dumps(dataclasses.asdict(ex), default=str))")
    env = {**os.environ, "SIGTERM_TEST": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-c", code, str(tpl), str(tmp_path / "o.ipynb"), str(started)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    deadline = time.monotonic() + 60
    while not started.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.05)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and time.monotonic() - t0 < 10, err        # inside Cloud Run's grace period
    ex = json.loads(out.splitlines()[-1])
    assert ex["status"] == "killed" and "SIGTERM" in ex["error"], ex
    cells = nbformat.read(ex["output"], as_version=4).cells
    # [1]: papermill's injected parameters
    assert cells[2].outputs[0]["text"] == "working\n" and not cells[4].outputs
    # the cell that was running says why
    assert cells[3].outputs[-1]["ename"] == "RunKilled"
    assert notebook_error(ex["output"]).startswith("RunKilled: stopped by SIGTERM")
    # the kernel went with the run
    assert processes_with_env("SIGTERM_TEST", str(tmp_path)) == []


def test_sigterm_at_any_moment_ends_the_run_killed_and_promptly(tmp_path):
    """SIGTERM while the kernel boots, while papermill starts, or mid-cell: always `killed`, always prompt.
    The handler never raises into papermill's event loop (an exception out of a loop callback is dropped and
    left the run waiting on a future that never resolved, until its cell timeout)."""
    tpl = make_template(tmp_path / "t.ipynb", 'marker = ""', "print('working')",
                        "import time\ntime.sleep(60)")
    code = ("import dataclasses, json, pathlib, sys\n"
            "from strategy_engine.notebooks import check_parameters, execute_notebook\n"
            "import papermill\n"
            "check_parameters(sys.argv[1], {})\n"
            "pathlib.Path(sys.argv[3]).touch()\n"           # what follows is under the run's SIGTERM handler
            "ex = execute_notebook(sys.argv[1], sys.argv[2], {})\n"
            "print(json.dumps(dataclasses.asdict(ex), default=str))")
    env = {**os.environ, "SIGTERM_ANY_TEST": str(tmp_path)}
    delays = (0.05, 0.5, 1.2, 2.5)        # seconds after the run starts: kernel boot .. cells running
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tpl), str(tmp_path / f"o{i}.ipynb"),
                               str(tmp_path / f"ready{i}")], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=env, cwd=ROOT) for i in range(len(delays))]
    signalled: dict[int, float] = {}
    deadline = time.monotonic() + 90
    while len(signalled) < len(procs):               # each one's SIGTERM `delay` after its own start
        for i, (proc, delay) in enumerate(zip(procs, delays)):
            ready = tmp_path / f"ready{i}"
            if i in signalled or not ready.exists(): continue
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            if time.time() >= ready.stat().st_mtime + delay:
                proc.send_signal(signal.SIGTERM)
                signalled[i] = time.monotonic()
        time.sleep(0.005)
    for i, (proc, delay) in enumerate(zip(procs, delays)):
        out, err = proc.communicate(timeout=40)
        assert proc.returncode == 0 and time.monotonic() - signalled[i] < 20, (delay, err)
        ex = json.loads(out.splitlines()[-1])
        assert ex["status"] == "killed" and ex["error"].startswith("stopped by SIGTERM"), (delay, ex)
    assert processes_with_env("SIGTERM_ANY_TEST", str(tmp_path)) == []


def test_figures_reach_the_record_even_under_a_headless_backend(tmp_path, monkeypatch):
    # as a headless image (the Dockerfile) might set
    monkeypatch.setenv("MPLBACKEND", "Agg")
    tpl = make_template(tmp_path / "t.ipynb", "n = 3",
                        "import matplotlib.pyplot as plt\nplt.plot(range(n))\nplt.show()")
    ex = execute_notebook(tpl, tmp_path / "o.ipynb")
    assert ex.status == "succeeded", ex.error
    [out] = nbformat.read(ex.output, as_version=4).cells[-1].outputs
    assert "image/png" in out["data"]
