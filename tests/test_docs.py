"""`make docs`: the notebooks, executed, as a static site whose links and images all resolve and that works
offline: no script, style sheet or image from the network, the math as MathML (tools/build_docs.py)."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tools"))
from build_docs import check_site, math_to_mathml  # noqa: E402


def test_a_chapter_renders_executed_with_its_plots_and_the_index_links_it(tmp_path):
    r = subprocess.run([sys.executable, ROOT / "tools" / "build_docs.py", "--only", "22_plots", "--out",
                        tmp_path],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    page = (tmp_path / "22_plots.html").read_text()
    # the plot, drawn by executing the chapter
    assert page.count("data:image/png;base64,") >= 1
    index = (tmp_path / "index.html").read_text()
    assert 'href="22_plots.html"' in index
    assert "0 broken link(s), missing image(s) or network request(s)" in r.stdout
    assert "<script src=" not in page and "cdnjs" not in page and check_site(tmp_path) == []


def test_a_chapter_with_math_renders_it_as_mathml_with_no_mathjax(tmp_path):
    """04_indicators states its formulas in TeX: each one is MathML in the page (Chromium draws MathML
    natively), no TeX is left in the prose, and no script is loaded to typeset it."""
    r = subprocess.run([sys.executable, ROOT / "tools" / "build_docs.py", "--only", "04_indicators",
                        "--no-execute", "--out", tmp_path],
                       capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stdout + r.stderr
    page = (tmp_path / "04_indicators.html").read_text()
    formulas = re.findall(r"<math\b.*?</math>", page, re.S)
    blocks = [f for f in formulas if 'display="block"' in f]
    assert len(formulas) > 40 and len(blocks) >= 4, (len(formulas), len(blocks))
    sma = next(f for f in blocks if "<mi mathvariant=\"normal\">S</mi><mi mathvariant=\"normal\">M</mi>" in f)
    assert "<mfrac>" in sma and "&#x02211;" in sma                                # 1/n and the sum of the SMA
    no_math = re.sub(r"<math\b.*?</math>", "", page, flags=re.S)
    prose = re.findall(r'data-mime-type="text/markdown">(.*?)</div>', no_math, re.S)
    text = "".join(re.sub(r"<code>.*?</code>", "", p, flags=re.S) for p in prose)
    assert prose and "$" not in text and "\\frac" not in text and "\\mathrm" not in text
    assert "<script" not in page                                          # nothing to typeset it, no CDN
    assert check_site(tmp_path) == []


def test_math_is_found_in_prose_only():
    formulas: dict[str, str] = {}
    md = "Costs $5 and $6; run `echo $HOME`, then $x^2$ and\n\n$$\\frac{a}{b}$$\n\n```\n$y$\n```\n"
    out = math_to_mathml(md, formulas)
    want = "Costs $5 and $6; run `echo $HOME`, then zzmathml00000zz and\n\nzzmathml00001zz\n\n```\n$y$\n```\n"
    assert out == want
    assert 'display="inline"' in formulas["zzmathml00000zz"] and "<msup>" in formulas["zzmathml00000zz"]
    assert 'display="block"' in formulas["zzmathml00001zz"] and "<mfrac>" in formulas["zzmathml00001zz"]
    assert math_to_mathml(r"a literal \$ and \$ sign", {}) == r"a literal \$ and \$ sign"


def test_the_check_names_every_request_to_the_network(tmp_path):
    (tmp_path / "index.html").write_text(
        '<a href="https://nse.com">a link is not a request</a>'
        '<math xmlns="http://www.w3.org/1998/Math/MathML"><mi>x</mi></math>'
        '<script src="https://cdn.example/mathjax.js"></script>'
        '<link rel="stylesheet" href="//cdn.example/a.css">'
        '<style>@import url("https://fonts.example/f.css");'
        ' p { background: url(https://img.example/b.png) }</style>'
        '<script type="module">import m from "https://cdn.example/mermaid.esm.min.mjs";</script>'
        '<iframe src="http://example.com/x"></iframe>')
    problems = check_site(tmp_path)
    assert [p.split(" from the network")[0] for p in problems] == [
        "index.html: loads <script> https://cdn.example/mathjax.js",
        "index.html: loads <link> //cdn.example/a.css",
        "index.html: loads <style> https://fonts.example/f.css",
        "index.html: loads <style> https://img.example/b.png",
        "index.html: loads <script> https://cdn.example/mermaid.esm.min.mjs",
        "index.html: loads <iframe> http://example.com/x"], problems


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
