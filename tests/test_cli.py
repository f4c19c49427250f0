"""The `strategy-engine` command as a user runs it: exit codes, messages, outputs."""
import json
import shutil

import nbformat

from conftest import run_cli


def test_help_on_top_level_and_commands():
    for args in ([], ["data"], ["data", "validate"], ["report", "data"], ["calendar"]):
        r = run_cli(*args, "--help")
        assert r.returncode == 0 and "usage: strategy-engine" in r.stdout, (args, r.stderr)


def test_validate_real_sample_passes_with_warnings(nse_dir):
    r = run_cli("data", "validate", nse_dir)
    assert r.returncode == 0, r.stderr
    assert "Result: PASS (0 error(s)" in r.stdout
    assert "[flat_zero_volume] ADANIENT: 2 flat bar(s)" in r.stdout


def test_validate_fails_stale_against_as_of(nse_dir):
    r = run_cli("data", "validate", nse_dir, "--as-of", "2026-11-20", "--json")
    assert r.returncode == 1
    report = json.loads(r.stdout)
    assert not report["ok"] and report["as_of"] == "2026-11-20"
    stale = [f for f in report["findings"] if f["check"] == "stale"]
    assert len(stale) == 50 and stale[0]["dates"] == ["2026-11-20"]


def test_validate_bad_input_is_a_clear_error(tmp_path, nse_dir):
    shutil.copy(nse_dir / "TCS.csv", tmp_path / "TCS.csv")
    lines = (nse_dir / "INFY.csv").read_text().splitlines()
    lines[10] = "2010-13-45" + lines[10][10:]
    (tmp_path / "INFY.csv").write_text("\n".join(lines) + "\n")
    r = run_cli("data", "validate", tmp_path)
    assert r.returncode == 1
    assert "INFY.csv: line 11: date '2010-13-45' is not a date" in r.stderr
    assert "Traceback" not in r.stderr
    r = run_cli("data", "validate", nse_dir, "--symbols", "RELIANC")
    assert r.returncode == 1 and "Did you mean 'RELIANCE'?" in r.stderr
    r = run_cli("data", "validate", tmp_path / "missing")
    assert r.returncode == 1 and "no such file or directory" in r.stderr


def test_validate_fails_closed_on_duplicates(tmp_path, nse_dir):
    """RELIABILITY 14: duplicate (symbol, date) rows are rejected before anything runs."""
    lines = (nse_dir / "TCS.csv").read_text().splitlines()
    (tmp_path / "TCS.csv").write_text("\n".join(lines[:100] + lines[99:]) + "\n")
    r = run_cli("data", "validate", tmp_path)
    assert r.returncode == 1 and "[duplicate_dates] TCS" in r.stdout


def test_misspelled_option_suggests(nse_dir):
    r = run_cli("data", "validate", nse_dir, "--as_of", "2024-11-22")
    assert r.returncode == 2 and "Did you mean '--as-of'" in r.stderr


def test_report_data_executes_and_archives(tmp_path):
    r = run_cli("report", "data", "--data", "synthetic", "--out", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    [out] = tmp_path.glob("data_report_*.ipynb")
    nb = nbformat.read(out, as_version=4)
    text = "\n".join(str(o.get("text", "")) for c in nb.cells for o in c.get("outputs", []))
    assert "SYNTHETIC" in text and "Result: PASS" in text
    images = [o for c in nb.cells for o in c.get("outputs", []) if "image/png" in o.get("data", {})]
    assert images, "the indicator plot was not rendered"


def test_report_research_runs_on_synthetic_data_labelled(tmp_path):
    r = run_cli("report", "research", "--data", "synthetic", "--start", "2020-01-01", "--out", tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    [out] = tmp_path.glob("50_strategy_research_*.ipynb")
    nb = nbformat.read(out, as_version=4)
    text = "\n".join(str(o.get("text", "")) for c in nb.cells for o in c.get("outputs", []))
    assert "SYNTHETIC demo data" in text
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and 'start = "2020-01-01"' in injected[0].source


def test_evaluate_writes_a_json_report(tmp_path, nse_dir):
    out = tmp_path / "ev.json"
    r = run_cli("evaluate", "--strategy", "breakout", "--walk-forward", "--start", "2016-01-01", "--out", out)
    assert r.returncode == 0, r.stdout + r.stderr
    report = json.loads(out.read_text())
    text = json.dumps(report)
    assert "deflated" in text and "pbo" in text.lower() and "out_of_sample" in text.replace("oos", "out_of_sample")
