"""Render the library and research notebooks, executed, to a static HTML site (no Quarto), and check it.

    python tools/build_docs.py [--out _docs] [--only 22_plots 05_metrics] [--skip-slow] [--jobs 2]
    python tools/build_docs.py --check _docs    # links and images of a built site; exit 1 naming problems

Each notebook of nbs/ (not the papermill templates in nbs/production/) is executed in its own folder, as
nbdev_test and JupyterLab run it, then rendered with nbconvert's lab template; plots are embedded as data:
URIs, links to other notebooks point at their pages, and index.html lists the chapters in reading order (the
file names' order) with each chapter's one-line summary. A notebook that fails to execute is still rendered,
up to its error, and the build exits 1 naming it.

The site works offline: the markdown's TeX ($...$, $$...$$) becomes MathML at build time (latex2mathml;
browsers render MathML natively), and the page template (tools/docs_template/offline) drops the scripts the
lab template loads from a CDN (MathJax, require.js, Mermaid, the widget manager). `--check` fails on any page
that still asks the network for a script, style sheet, image or frame.
"""
from __future__ import annotations

import argparse
import html
import re
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

ROOT = Path(__file__).resolve().parent.parent
NBS = ROOT / "nbs"
TEMPLATES = Path(__file__).resolve().parent / "docs_template"     # the `offline` page template
SLOW = re.compile(r"^#\|\s*(slow|notest)\b", re.M)
SKIP = re.compile(r"^#\|\s*eval:\s*false\b", re.M)


@dataclass
class Page:
    "One rendered chapter: its notebook, title, summary, seconds to execute and error (empty when it ran)."
    notebook: Path
    title: str
    summary: str
    seconds: float
    error: str = ""

    @property
    def html_name(self) -> str: return self.notebook.stem + ".html"


def notebooks(only: list[str] | None = None) -> list[Path]:
    "The chapters in reading order: nbs/*.ipynb by name (production templates excluded); `only` by stem."
    found = sorted(NBS.glob("*.ipynb"))
    if not only: return found
    stems = {p.stem: p for p in found}
    missing = [s for s in only if s not in stems]
    if missing:
        raise SystemExit(f"build_docs: --only {' '.join(missing)}: no such notebook in nbs/ (have: "
                         f"{', '.join(stems)})")
    return [stems[s] for s in only]


def _heading(nb) -> tuple[str, str]:
    "The notebook's title (its first '# ' heading) and summary (the '> ' line under it)."
    for cell in nb.cells:
        if cell.cell_type != "markdown": continue
        title = re.search(r"^#\s+(.+)$", cell.source, re.M)
        summary = re.search(r"^>\s*(.+)$", cell.source, re.M)
        if title: return title.group(1).strip(), (summary.group(1).strip() if summary else "")
    return "", ""


# Math in markdown: $$display$$ or $inline$ (no space inside the dollars, no digit or letter right after the
# closing one, so "$5 and $6" stays text); code spans and fenced blocks are left alone (shell "$HOME").
MATH = re.compile(r"\$\$(?P<display>.+?)\$\$"
                  r"|(?<![\\$\w])\$(?![\s$])(?P<inline>[^$\n]+?)(?<![\s\\])\$(?![\w$])", re.S)
CODE = re.compile(r"^(?P<fence>```|~~~).*?^(?P=fence)[^\n]*$|(?P<ticks>`+).+?(?P=ticks)", re.S | re.M)


def math_to_mathml(source: str, formulas: dict[str, str]) -> str:
    "Markdown `source` with each TeX formula replaced by a plain token; `formulas` maps tokens to MathML."
    from latex2mathml.converter import convert

    def one(m: re.Match) -> str:
        display = m.group("display") is not None
        tex = m.group("display") if display else m.group("inline")
        try: mathml = convert(tex.strip(), display="block" if display else "inline")
        except Exception as e:                       # shown as TeX, and the build says which formula failed
            raise ValueError(f"formula {tex.strip()[:60]!r} is not TeX latex2mathml reads ({e})") from None
        token = f"zzmathml{len(formulas):05d}zz"     # letters and digits only: markdown leaves it as it is
        formulas[token] = mathml
        return token

    out, at = [], 0
    for code in CODE.finditer(source):
        out += [MATH.sub(one, source[at:code.start()]), code.group(0)]
        at = code.end()
    return "".join(out) + MATH.sub(one, source[at:])


def render(path: Path, out: Path, execute: bool = True, skip_slow: bool = False, timeout: int = 900) -> Page:
    "Execute notebook `path` in its folder (unless `execute` is False) and write its page into `out`."
    import nbformat
    from nbclient import NotebookClient
    from nbclient.exceptions import CellExecutionError
    from nbconvert import HTMLExporter
    nb = nbformat.read(path, as_version=4)
    title, summary = _heading(nb)
    error, t0 = "", time.perf_counter()
    if execute:
        skipped = [c for c in nb.cells if c.cell_type == "code" and (SKIP.search(c.source) or
                                                                     (skip_slow and SLOW.search(c.source)))]
        for c in skipped: c.source = "# (not executed for the docs)\n" + c.source
        runnable = nbformat.from_dict(nb)
        runnable.cells = [c for c in nb.cells if c not in skipped]
        client = NotebookClient(runnable, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(path.parent)}})
        try: client.execute()
        except CellExecutionError as e:
            error = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
        except Exception as e:                      # a kernel that died or timed out: keep what ran
            error = f"{type(e).__name__}: {e}"
        done = {id(c): c for c in runnable.cells}
        nb.cells = [done.get(id(c), c) for c in nb.cells]
    formulas: dict[str, str] = {}
    for cell in nb.cells:
        if cell.cell_type != "markdown": continue
        try: cell.source = math_to_mathml(cell.source, formulas)
        except ValueError as e: error = error or f"markdown: {e}"
    exporter = HTMLExporter(template_name="offline", extra_template_basedirs=[str(TEMPLATES)])
    body, _ = exporter.from_notebook_node(nb, resources={"metadata": {"name": title}})
    body = _link_pages(re.sub(r"zzmathml\d{5}zz", lambda m: formulas[m.group(0)], body))
    (out / (path.stem + ".html")).write_text(body, encoding="utf-8")
    return Page(path, title or path.stem, summary, time.perf_counter() - t0, error)


def _link_pages(body: str) -> str:
    "Links to another chapter (NAME.ipynb, nbs/NAME.ipynb) point at its page NAME.html."
    def fix(m: re.Match) -> str:
        target = m.group(2)
        if "://" in target: return m.group(0)
        name = Path(urlsplit(target).path).name
        if (NBS / name).is_file(): return f'{m.group(1)}{Path(name).stem}.html{m.group(3)}'
        return m.group(0)
    return re.sub(r'(href=")([^"#]+\.ipynb)((?:#[^"]*)?")', fix, body)


def write_index(pages: list[Page], out: Path) -> None:
    "index.html: every chapter in reading order, its summary, and whether it executed."
    rows = []
    for p in pages:
        state = f' <span class="error">(did not execute: {html.escape(p.error)})</span>' if p.error else ""
        rows.append(f'<li><a href="{p.html_name}">{html.escape(p.notebook.stem)}: {html.escape(p.title)}</a>'
                    f'{" — " + html.escape(p.summary) if p.summary else ""}{state}</li>')
    (out / "index.html").write_text(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Strategy "
        "Engine</title><style>body{font-family:sans-serif;max-width:60em;margin:2em auto}li{margin:.3em "
        "0}.error{color:#b00}</style></head><body><h1>Strategy Engine</h1>\n<p>The notebooks of "
        "<code>nbs/</code>, executed, in reading order. Built by <code>make docs</code> "
        "(tools/build_docs.py).</p>\n<ol>\n" + "\n".join(rows) +
        "\n</ol></body></html>\n", encoding="utf-8")


REMOTE = re.compile(r"^\s*(https?:)?//", re.I)          # a URL the browser would fetch from a network
LOADS = {"script": "src", "img": "src", "iframe": "src", "source": "src", "audio": "src", "video": "src",
         "embed": "src", "object": "data", "link": "href"}                # the attribute each tag loads
CSS_REMOTE = re.compile(r"(?:url\(\s*['\"]?|@import\s+['\"])\s*((?:https?:)?//[^'\")\s]+)", re.I)
SCRIPT_REMOTE = re.compile(r"['\"]((?:https?:)?//[^'\"\s]+\.(?:m?js|css)(?:\?[^'\"\s]*)?)['\"]", re.I)


class _Refs(HTMLParser):
    "Collects every href and src of a page, and what it would load from the network."
    def __init__(self):
        super().__init__()
        self.links: list[str] = []
        self.images: list[str] = []
        self.remote: list[str] = []
        self._in = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "a" and a.get("href"): self.links.append(a["href"] or "")
        if tag == "img": self.images.append(a.get("src") or "")
        loaded = a.get(LOADS.get(tag, "")) or ""
        rel = a.get("rel") or ""
        if tag == "link" and "stylesheet" not in rel and "preload" not in rel:
            loaded = ""                                                    # a link to a page, not a resource
        if REMOTE.match(loaded): self.remote.append(f"<{tag}> {loaded}")
        if REMOTE.match(a.get("srcset") or ""): self.remote.append(f"<{tag} srcset> {a['srcset']}")
        self._in = tag if tag in ("style", "script") else ""
        for url in CSS_REMOTE.findall(a.get("style") or ""): self.remote.append(f"<{tag} style> {url}")

    def handle_endtag(self, tag):
        self._in = ""

    def handle_data(self, data):
        if self._in == "style": self.remote += [f"<style> {u}" for u in CSS_REMOTE.findall(data)]
        if self._in == "script": self.remote += [f"<script> {u}" for u in SCRIPT_REMOTE.findall(data)]


def check_site(site: Path) -> list[str]:
    "Broken links, missing images and network requests of a built site (it must work offline)."
    problems: list[str] = []
    pages = sorted(site.glob("*.html"))
    if not (site / "index.html").is_file(): problems.append(f"{site}: no index.html")
    for page in pages:
        refs = _Refs()
        refs.feed(page.read_text(encoding="utf-8"))
        for src in refs.images:
            if src.startswith("data:image/"):
                if len(src) < 100: problems.append(f"{page.name}: an empty embedded image")
            elif not src or "://" in src or not (site / unquote(urlsplit(src).path)).is_file():
                problems.append(f"{page.name}: image {src[:80]!r} is missing (not embedded, not in the site)")
        for what in refs.remote:
            problems.append(f"{page.name}: loads {what[:120]} from the network (the site must work offline)")
        for href in refs.links:
            parts = urlsplit(href)
            if parts.scheme in ("http", "https", "mailto") or href.startswith("#") or not parts.path: continue
            if not (site / unquote(parts.path)).is_file():
                problems.append(f"{page.name}: link {href!r} points at nothing in the site")
    return problems


def main(argv: list[str] | None = None) -> int:
    "Build the site (or check one) and say what it did."
    p = argparse.ArgumentParser(prog="tools/build_docs.py", description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=ROOT / "_docs", help="the site's folder (default _docs/)")
    p.add_argument("--only", nargs="+", metavar="NOTEBOOK",
                   help="render only these notebooks (stems, e.g. 22_plots)")
    p.add_argument("--no-execute", action="store_true", help="render the outputs stored in the notebooks")
    p.add_argument("--skip-slow", action="store_true",
                   help="do not execute cells flagged #| slow or #| notest")
    p.add_argument("--jobs", type=int, default=2, help="notebooks executed at once (default 2)")
    p.add_argument("--timeout", type=int, default=900, help="per-cell timeout in seconds (default 900)")
    p.add_argument("--check", type=Path, metavar="SITE",
                   help="only check a built site's links, images and offline use")
    args = p.parse_args(argv)
    if args.check:
        problems = check_site(args.check)
        for x in problems: print(x)
        print(f"{args.check}: {len(problems)} problem(s)")
        return 1 if problems else 0
    args.out.mkdir(parents=True, exist_ok=True)
    chosen = notebooks(args.only)
    t0 = time.perf_counter()
    def one(path: Path) -> Page:
        page = render(path, args.out, not args.no_execute, args.skip_slow, args.timeout)
        print(f"{page.notebook.stem}: {page.seconds:.0f} s" + (f" - {page.error}" if page.error else ""),
              flush=True)
        return page
    with ThreadPoolExecutor(max(1, args.jobs)) as pool: pages = list(pool.map(one, chosen))
    write_index(pages, args.out)
    problems = check_site(args.out)
    failed = [p for p in pages if p.error]
    for x in problems: print(x)
    print(f"{args.out}/index.html: {len(pages)} page(s) in {time.perf_counter() - t0:.0f} s; "
          f"{len(failed)} did not execute ({', '.join(p.notebook.stem for p in failed) or 'none'}); "
          f"{len(problems)} broken link(s), missing image(s) or network request(s)")
    return 1 if failed or problems else 0


if __name__ == "__main__":
    sys.exit(main())
