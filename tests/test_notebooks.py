"""papermill execution through `strategy_engine.notebooks`: outcomes, parameters, kernels."""
import json
import os

import nbformat
import pytest

from strategy_engine import notebooks
from strategy_engine.core import ConfigError, UnknownNameError
from strategy_engine.notebooks import boot_kernel_early, execute_notebook, notebook_error, template_parameters

from conftest import ROOT, make_template


def test_parameter_values_arrive_unchanged(tmp_path):
    tpl = make_template(tmp_path / "t.ipynb", 'text = "default"\nitems = []\nout = ""',
                        "import json\nopen(out, 'w').write(json.dumps({'text': text, 'items': items}))")
    nasty = 'quote " single \' backslash \\ newline \n tab \t unicode ₹ }} {{ $x'
    result = tmp_path / "result.json"
    ex = execute_notebook(tpl, tmp_path / "o.ipynb", {"text": nasty, "items": [nasty, {"k": nasty}], "out": str(result)})
    assert ex.status == "succeeded", ex.error
    assert json.loads(result.read_text()) == {"text": nasty, "items": [nasty, {"k": nasty}]}


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
    tpl = make_template(tmp_path / "t.ipynb", "x = 1", "import time\ntime.sleep(30)")
    ex = execute_notebook(tpl, tmp_path / "o.ipynb", timeout=3)
    assert ex.status == "timeout" and ex.output.exists() and ex.seconds < 25


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
                        "import json, os, sys\n"
                        "seen = {'pid': os.getpid(), 'cwd': os.getcwd(), 'preloaded': 'tabnanny' in sys.modules}\n"
                        "json.dump(seen, open(out, 'w'))",
                        "import tabnanny",
                        "import no_such_module_anywhere")
    boot_kernel_early(tpl, tmp_path)
    pid = notebooks._early[notebooks._early_key(tpl, tmp_path)].provisioner.pid
    ex = execute_notebook(tpl, tmp_path / "o.ipynb", {"out": str(tmp_path / "r.json")}, cwd=tmp_path)
    seen = json.loads((tmp_path / "r.json").read_text())
    assert seen == {"pid": pid, "cwd": str(tmp_path.resolve()), "preloaded": True}    # the early kernel, its imports done
    assert ex.status == "failed" and ex.error.startswith("ModuleNotFoundError")        # a failed preload: its cell raises
    with pytest.raises(ProcessLookupError): os.kill(pid, 0)                            # killed and reaped
    assert not notebooks._early


def test_a_kernel_that_dies_is_a_failed_run_with_its_notebook_kept(tmp_path):
    tpl = make_template(tmp_path / "t.ipynb", "x = 1", "print('before the crash')", "import os\nos._exit(3)", "print('never')")
    ex = execute_notebook(tpl, tmp_path / "o.ipynb")                    # no exception out of the launcher's call
    assert ex.status == "failed" and ex.error.startswith("DeadKernelError"), ex
    cells = nbformat.read(ex.output, as_version=4).cells
    assert cells[1].outputs[0]["text"] == "before the crash\n" and not cells[3].outputs     # kept as far as it got
