"""`make docs`: the notebooks, executed, as a static site whose links and images resolve."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from build_docs import check_site  # noqa: E402


def test_a_chapter_renders_executed_with_its_plots_and_the_index_links_it(tmp_path):
    r = subprocess.run([sys.executable, ROOT / "tools" / "build_docs.py", "--only", "22_plots", "--out",
                        tmp_path],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    page = (tmp_path / "22_plots.html").read_text()
    # the plot, drawn by executing the chapter
    assert page.count("data:image/png;base64,") >= 1
    index = (tmp_path / "index.html").read_text()
    assert 'href="22_plots.html"' in index and "0 broken link(s) or missing image(s)" in r.stdout


def test_the_check_names_a_broken_link_and_a_missing_image(tmp_path):
    (tmp_path / "index.html").write_text('<a href="01_calendar.html">calendar</a><a '
                                         'href="https://nse.com">x</a>')
    (tmp_path / "01_calendar.html").write_text('<img src="figure.png"><a href="#top">top</a><img '
                                               'src="data:image/png;base64,">')
    problems = check_site(tmp_path)
    assert problems == ["01_calendar.html: image 'figure.png' is missing (not embedded, not in the site)",
                        "01_calendar.html: an empty embedded image"], problems
    (tmp_path / "01_calendar.html").unlink()
    assert check_site(tmp_path) == ["index.html: link '01_calendar.html' points at nothing in the site"]


@pytest.mark.skipif(not (ROOT / "_docs" / "index.html").is_file(), reason="no site built (make docs)")
def test_the_built_site_has_no_broken_link_or_missing_image():
    assert check_site(ROOT / "_docs") == []
