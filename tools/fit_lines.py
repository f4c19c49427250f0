"""Fit code lines to 110 columns, changing only the lines that are too long (never a whole-file reformat).

Sources: every code cell of `nbs/**/*.ipynb` (library, research and `nbs/production/` templates) and every
`.py` under `tests bench tools scripts`. Each line over the limit gets the first of these changes that
shortens it (one that fits before one that only shortens):

1. a comment line is wrapped (same indent, `# ` prefix); nbdev directives (`#| ...`) are left alone;
2. a trailing comment: on a `def` signature, the signature one parameter a line with each comment beside its
   parameter (the house style of `backtest`), if that fits; otherwise the comment moves onto its own line
   above (above the whole statement when it ends one of several lines), wrapped if needed, when the code alone
   fits;
3. statements joined by `;` go on lines of their own (E702); a one-line `if x: y` (any compound statement)
   that is too long: `y` moves onto its own line;
4. the brackets around the line, re-laid in the house style: items aligned after the open bracket and packed a
   line at a time (one a line, comments beside, when they were one a line or hold comments), or a one-line
   comprehension broken before its `for`; the pair that changes the fewest lines wins; never when the items
   would start past 3/5 of the line;
5. implicitly concatenated string literals inside brackets (or a lone literal assigned or returned, put in
   parentheses), joined and cut again at spaces; an f-string piece keeps its `f` only where it has a
   placeholder; never a literal that is an operand (`"..." if x else y`) or starts past 3/5 of the line;
6. the smallest statement holding the line (only the header of a `def`/`class`/`if`/`for`/`with` whose header
   is long) through `ruff format` (dedented, line length 110 minus its indent, quotes preserved), re-indented.
Every other line of the cell or file stays byte-identical. A change is kept only when
`ast.dump(ast.parse(...))` of the whole cell or file is unchanged (magic lines masked; a `%%` cell is
skipped), checked once more before anything is written. What is still long (docstrings, multi-line strings,
long words) is listed for a hand fix.

    .venv/bin/python tools/fit_lines.py            # fix in place; print a summary and the lines left
    .venv/bin/python tools/fit_lines.py --check    # change nothing; list long lines, exit 1 if there are any
    .venv/bin/python tools/fit_lines.py nbs/20_backtest.ipynb tests/test_cli.py   # only these files

`--check` without paths also reads the generated `strategy_engine/` modules (a module docstring comes from the
notebook's summary line), skipping the `__all__` list that nbdev itself wraps at 120 columns.
Deterministic and idempotent (a second run changes nothing). Over this tree: the first pass took 9 s of CPU
(1,972 lines), a run over a fitted tree under 1 s.
"""
from __future__ import annotations

import argparse
import ast
import io
import json
import re
import subprocess
import sys
import textwrap
import tokenize
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LIMIT = 110
PY_FOLDERS = ("tests", "bench", "tools", "scripts")
RUFF = ROOT / ".venv" / "bin" / "ruff"


def width(line: str) -> int:
    "Display columns of `line` as ruff counts them (East Asian wide characters count 2)."
    if line.isascii():
        return len(line)
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in line)


def overflow(lines: list[str], limit: int) -> int:
    "Columns over `limit`, summed over `lines`."
    return sum(max(0, width(line) - limit) for line in lines)


def _indent(line: str) -> str:
    return line[: len(line) - len(line.lstrip())]


# ------------------------------------------------------------------------------------------------------------
# Parsing with IPython magics masked

_MAGIC = re.compile(r"^\s*[%!]")


def mask_magics(text: str) -> str | None:
    "`text` with line magics and shell lines replaced by `pass` (same indent); None for a `%%` cell magic."
    if text.lstrip().startswith("%%"):
        return None
    return "\n".join(_indent(line) + "pass" if _MAGIC.match(line) else line for line in text.split("\n"))


def ast_key(text: str) -> str | None:
    "`ast.dump` of `text` (magics masked), or None when it does not parse."
    masked = mask_magics(text)
    if masked is None:
        return None
    try:
        return ast.dump(ast.parse(masked))
    except (SyntaxError, ValueError):
        return None


@dataclass
class Tokens:
    "What the fixers need from the tokens of one cell or file (line numbers from 1)."

    comments: dict[int, tokenize.TokenInfo] = field(default_factory=dict)  # line -> its comment token
    in_string: set[int] = field(default_factory=set)  # lines inside a multi-line string, after its first line
    # (STRING token, bracket depth); (position of ':', bracket depth); (open, close, depth inside); (position
    # of
    # ',', bracket depth); (`for` or `lambda`, position, bracket depth)
    strings: list[tuple[tokenize.TokenInfo, int]] = field(default_factory=list)
    colons: list[tuple[tuple[int, int], int]] = field(default_factory=list)
    code_starts: set[int] = field(default_factory=set)  # lines whose first token is code (not a comment)
    pairs: list[tuple[tokenize.TokenInfo, tokenize.TokenInfo, int]] = field(default_factory=list)
    commas: list[tuple[tuple[int, int], int]] = field(default_factory=list)
    keywords: list[tuple[str, tuple[int, int], int]] = field(default_factory=list)


def scan(text: str) -> Tokens | None:
    "Tokenize `text`; None when it does not tokenize."
    out, depth, seen, stack = Tokens(), 0, set(), []
    try:
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            kind, line = tok.type, tok.start[0]
            if kind == tokenize.COMMENT:
                out.comments[line] = tok
            elif kind == tokenize.STRING:
                out.strings.append((tok, depth))
                out.in_string.update(range(tok.start[0] + 1, tok.end[0] + 1))
            elif kind == tokenize.NAME and tok.string in ("for", "lambda"):
                out.keywords.append((tok.string, tok.start, depth))
            elif kind == tokenize.OP:
                if tok.string in "([{":
                    depth += 1
                    stack.append(tok)
                elif tok.string in ")]}":
                    out.pairs.append((stack.pop(), tok, depth))
                    depth -= 1
                elif tok.string == ",":
                    out.commas.append((tok.start, depth))
                elif tok.string == ":":
                    out.colons.append((tok.start, depth))
            if kind not in (tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                            tokenize.ENDMARKER) and line not in seen:
                out.code_starts.add(line)
            if kind not in (tokenize.NL, tokenize.NEWLINE, tokenize.INDENT, tokenize.DEDENT,
                            tokenize.ENDMARKER):
                seen.add(line)
    except (tokenize.TokenError, IndentationError, SyntaxError, IndexError):
        return None
    return out


# ------------------------------------------------------------------------------------------------------------
# ruff format on a snippet

_FORMAT_CACHE: dict[tuple[str, int], str | None] = {}


def ruff_format(code: str, line_length: int) -> str | None:
    "`code` formatted by `ruff format` (isolated from ruff.toml, quotes kept); None when ruff refuses it."
    key = (code, line_length)
    if key not in _FORMAT_CACHE:
        run = subprocess.run([str(RUFF), "format", "--isolated", "--config", "format.quote-style='preserve'",
                              "--target-version", "py311", "--line-length", str(line_length), "-"],
                             input=code, capture_output=True, text=True)
        _FORMAT_CACHE[key] = run.stdout if run.returncode == 0 else None
    return _FORMAT_CACHE[key]


def _dedent(lines: list[str], first: int, indent: str, toks: Tokens) -> list[str]:
    out = []
    for n, line in enumerate(lines, start=first):
        if n in toks.in_string:
            out.append(line)
        else:
            out.append(line[len(indent):] if line.startswith(indent) else line.lstrip())
    return out


def format_span(lines: list[str], first: int, last: int, toks: Tokens, limit: int,
                header: str | None = None) -> list[str] | None:
    "Lines `first..last` (from 1) through ruff at their indent; `header`: the keyword of a header-only span."
    indent = _indent(lines[first - 1])
    snippet = _dedent(lines[first - 1: last], first, indent, toks)
    body = "\n" + " " * 4 + "pass\n" if header else "\n"
    if header == "oneline":
        header = None
    if header == "elif":
        snippet[0] = snippet[0][2:]
    elif header in ("else", "try", "finally"):
        return None
    code = "\n".join(snippet) + body
    out = ruff_format(code, max(limit - width(indent), 20))
    if out is None:
        return None
    new = out.rstrip("\n").split("\n")
    if header:
        if new[-1].strip() != "pass":
            return None
        new = new[:-1]
    if header == "elif":
        new[0] = "el" + new[0]
    new_toks = scan("\n".join(new) + "\n")
    if new_toks is None:
        return None
    return [line if (n in new_toks.in_string or not line) else indent + line for n, line in enumerate(new, 1)]


# ------------------------------------------------------------------------------------------------------------
# The fixers: each returns (first line, last line, new lines), or None when it cannot help


def wrap_comment(comment: str, indent: str, limit: int) -> list[str] | None:
    "A comment (`# ...`) wrapped to `limit` columns at `indent`; None when a word is too long."
    text = comment.lstrip("#").strip()
    room = limit - width(indent) - 2
    parts = textwrap.wrap(text, room, break_long_words=False, break_on_hyphens=False)
    if not parts or any(width(p) > room for p in parts):
        return None
    return [indent + "# " + p for p in parts]


def _crosses(line: str, n: int, pair: tuple[tokenize.TokenInfo, tokenize.TokenInfo, int], limit: int) -> bool:
    "Whether the part of line `n` inside the brackets `pair` reaches past `limit`."
    (l0, c0), (l1, c1) = pair[0].start, pair[1].start
    if l0 == n and width(line[:c0]) >= limit:
        return False
    # past the limit inside the brackets, or in a short tail that moves with the last item (`) -> int:`)
    return width(line[: (c1 + 1 if l1 == n else len(line))]) > limit or (
        l1 == n and width(line) > limit and width(line[c1:]) <= 40)


def break_for(lines: list[str], toks: Tokens, pair: tuple[tokenize.TokenInfo, tokenize.TokenInfo, int],
              limit: int) -> tuple[int, int, list[str]] | None:
    "A one-line comprehension (or generator argument) broken before its `for`, aligned after its bracket."
    opening, closing, depth = pair
    (l0, c0), (l1, _) = opening.start, closing.start
    inside = [(word, pos)
              for word, pos, d in toks.keywords if d == depth and opening.start < pos < closing.start]
    fors = [pos for word, pos in inside if word == "for"]
    if l0 != l1 or not fors or any(word == "lambda" and pos < fors[0] for word, pos in inside):
        return None
    line = lines[l0 - 1]
    pad = " " * width(line[: c0 + 1])
    if width(pad) > limit * 3 // 5:
        return None
    return l0, l0, [line[: fors[0][1]].rstrip(), pad + line[fors[0][1]:]]


def _join(parts: list[str]) -> str:
    "The lines of one item joined: no space after an opening bracket or before a closing one."
    out = ""
    for part in parts:
        out += part if not out or out[-1] in "([{" or part[0] in ")]}" else " " + part
    return out


def refill(lines: list[str], toks: Tokens, pair: tuple[tokenize.TokenInfo, tokenize.TokenInfo, int],
           limit: int) -> tuple[int, int, list[str]] | None:
    "The items of brackets `pair` re-laid in the house style: aligned after the bracket, packed or one a row."
    opening, closing, depth = pair
    (l0, c0), (l1, c1) = opening.start, closing.start
    head, tail = lines[l0 - 1][: c0 + 1], lines[l1 - 1][c1:]
    # the text between the brackets, cut at the commas directly inside them
    cuts = [pos for pos, d in toks.commas if d == depth and opening.start < pos < closing.start]
    inner_comments = {n: c for n, c in toks.comments.items() if l0 <= n < l1 and c.start > opening.start}
    if any(d == depth and opening.start < pos < closing.start for _, pos, d in toks.keywords):
        return None  # a comprehension or a lambda: its commas are not the brackets' items
    if any(n in toks.in_string for n in range(l0 + 1, l1 + 1)):
        return None

    bounds = [(opening.start[0], opening.start[1] + 1), *[(r, c + 1) for r, c in cuts]]
    ends = [*cuts, closing.start]
    items: list[str] = []
    notes: list[str | None] = []  # the comment beside each item
    for a, b in zip(bounds, ends, strict=True):
        parts: list[str] = []
        note = None
        for row in range(a[0], b[0] + 1):
            start, stop = (a[1] if row == a[0] else 0), (b[1] if row == b[0] else len(lines[row - 1]))
            seg = lines[row - 1][start:stop]
            c = inner_comments.get(row)
            if c is not None and row < b[0] and c.start[1] >= start:
                seg = lines[row - 1][start: c.start[1]]
                if any(part.strip() for part in parts) or seg.strip():
                    if note is not None:
                        return None
                    note = c.string  # beside this item's code
                elif row == a[0] and notes and notes[-1] is None:
                    notes[-1] = c.string  # after the previous item's comma
                else:
                    return None  # a comment line of its own before an item: leave the layout to a person
            elif note is not None and seg.strip():
                return None  # code after the comment: it explains a nested line, not the item
            parts.append(seg)
        items.append(_join([part.strip() for part in parts if part.strip()]))
        notes.append(note)
    trailing = not items[-1]
    if trailing:
        items.pop()
        extra = notes.pop()
        if extra is not None:
            if notes[-1] is not None:
                return None
            notes[-1] = extra
    if not items or any(not item for item in items):
        return None
    pad = " " * width(head)
    if width(pad) > limit * 3 // 5:  # items squeezed against the right edge: leave it to ruff
        return None
    out: list[str] = []
    rows_of_items = [r for r, _ in cuts] + [closing.start[0]]
    vertical = len(items) > 2 and len(set(rows_of_items[: len(items)])) == len(items)
    first_row = next(r for r in range(l0, l1 + 1) if lines[r - 1][(c0 + 1 if r == l0 else 0):].strip())
    if first_row > l0:  # hanging: the items on lines of their own, below the open bracket
        pad = _indent(lines[first_row - 1])
        out.append(head)
        head = pad
        if not lines[l1 - 1][:c1].strip():  # the closing bracket starts its line: it stays there
            tail = "\n" + lines[l1 - 1][:c1] + tail
            trailing = True
    if any(notes) or vertical:
        rows = [(pad if i else head) + item + ("," if i < len(items) - 1 or trailing or notes[-1] else "")
                for i, item in enumerate(items)]
        at = max([width(r) for r, n in zip(rows, notes, strict=True) if n] or [0]) + 3
        for row, note in zip(rows, notes, strict=True):
            if note is None:
                out.append(row)
            elif at + width(note) <= limit:
                out.append(row + " " * (at - width(row)) + note)
            else:
                out.append(row + "  " + note)
        if notes[-1] and not tail.startswith("\n"):
            out.append(pad + tail)
        else:
            out[-1] += tail
        return l0, l1, "\n".join(out).split("\n")
    cur = head
    for i, item in enumerate(items):
        last = i == len(items) - 1
        piece = item + ("," if not last or trailing else "")
        need = piece + (tail.split("\n")[0] if last else "")
        if cur == head:
            cur += piece
        elif width(cur) + 1 + width(need) <= limit:
            cur += " " + piece
        else:
            out.append(cur)
            cur = pad + piece
    out.append(cur + tail)
    return l0, l1, "\n".join(out).split("\n")


def unfold(lines: list[str], first: int, last: int, tree: list[ast.stmt], toks: Tokens) -> list[str] | None:
    "The one-line compound statement on lines `first..last` with its body moved onto lines of its own."
    node = next((x for x in tree if x.lineno == first and getattr(x, "body", None)
                 and x.body[0].lineno == first), None)
    if node is None:
        return None
    body_col = node.body[0].col_offset  # ast columns count UTF-8 bytes
    text = lines[first - 1].encode()
    header, body = text[:body_col].decode().rstrip(), text[body_col:].decode()
    inner = _indent(lines[first - 1]) + " " * 4
    shift = width(text[:body_col].decode()) - width(inner)
    out = [header, inner + body]
    for n in range(first + 1, last + 1):
        line = lines[n - 1]
        if n in toks.in_string or (line.strip() and len(_indent(line)) < shift):
            return None
        out.append(line[shift:] if line.strip() else line)
    return out


def split_statements(lines: list[str], n: int, tree: list[ast.stmt]) -> list[str] | None:
    "Line `n`'s statements joined by `;` on lines of their own (E702), when they make up the whole line."
    line = lines[n - 1]
    indent = _indent(line)
    raw = line.encode()
    mine = sorted((x for x in tree if x.lineno == x.end_lineno == n), key=lambda x: x.col_offset)
    if len(mine) < 2 or mine[0].col_offset != len(indent.encode()):
        return None
    pieces = [raw[a.col_offset: a.end_col_offset].decode() for a in mine]
    gaps = [raw[a.end_col_offset: b.col_offset].decode().strip() for a, b in zip(mine, mine[1:])]
    if any(gap != ";" for gap in gaps) or raw[mine[-1].end_col_offset:].decode().strip() not in ("", ";"):
        return None
    return [indent + piece for piece in pieces]


def _smallest_span(
    tree: list[ast.stmt], lines: list[str], n: int, toks: Tokens
) -> tuple[int, int, str | None] | None:
    "The smallest statement (or compound-statement header) holding line `n` that starts and ends its lines."
    best: tuple[int, int, str | None] | None = None

    def aligned_start(node: ast.stmt) -> bool:
        line = lines[node.lineno - 1]
        return node.col_offset == len(_indent(line)) or (
            line.lstrip().startswith("elif") and node.col_offset == len(_indent(line)) + 2)

    def aligned_end(last: int, end_col: int) -> bool:
        line = lines[last - 1]
        comment = toks.comments.get(last)
        code = line[: comment.start[1]] if comment else line
        return end_col >= len(code.rstrip())

    for node in tree:
        if node.end_lineno is None or not node.lineno <= n <= node.end_lineno:
            continue
        if not aligned_start(node):
            continue
        body = getattr(node, "body", None)
        span: tuple[int, int, str | None]
        if body and isinstance(body, list):
            colon = next(((line, col) for (line, col), depth in toks.colons
                          if depth == 0 and (line, col) > (node.lineno, node.col_offset)), None)
            if colon is None:
                continue
            head_end = colon[0]
            if body[0].lineno == head_end:  # a one-line compound statement (`if x: y`)
                single = len(body) == 1 and not any(getattr(node, k, None)
                                                    for k in ("orelse", "handlers", "finalbody"))
                if not (node.end_lineno == head_end or single):
                    continue
                if not aligned_end(node.end_lineno, node.end_col_offset or 0):
                    continue
                span = (node.lineno, node.end_lineno, "oneline")
            elif n <= head_end:
                keyword = lines[node.lineno - 1].split()[0].rstrip(":")
                span = (node.lineno, head_end, "elif" if keyword == "elif" else keyword)
            else:
                continue
        else:
            if not aligned_end(node.end_lineno, node.end_col_offset or 0):
                continue
            span = (node.lineno, node.end_lineno, None)
        if best is None or span[1] - span[0] < best[1] - best[0] or (
                span[1] - span[0] == best[1] - best[0] and span[0] > best[0]):
            best = span
    return best


def statements(tree: ast.AST) -> list[ast.stmt]:
    "Every statement of `tree`, nested ones included."
    return [node for node in ast.walk(tree) if isinstance(node, ast.stmt)]


def _is_string_statement(tree: list[ast.stmt], first: int) -> bool:
    return any(isinstance(node, ast.Expr) and isinstance(node.value, (ast.Constant, ast.JoinedStr))
               and node.lineno == first for node in tree)


_STRING = re.compile(r"(?is)([rbfu]*)('|\")(.*)\2")


def string_run(toks: Tokens, n: int) -> list[tokenize.TokenInfo]:
    "The implicitly concatenated one-line string literals that hold the last string of line `n`."
    strings = [tok for tok, _ in toks.strings]
    at = [i for i, tok in enumerate(strings) if tok.start[0] == n and tok.end[0] == n]
    if not at:
        return []
    i = j = at[-1]
    # neighbours: the next literal starts where this one's line ends (only spaces and line breaks between
    # them)
    while (
        i > 0
        and strings[i - 1].end[0] == strings[i - 1].start[0]
        and _adjacent(toks, strings[i - 1], strings[i])
    ):
        i -= 1
    while j + 1 < len(strings) and strings[j + 1].start[0] == strings[j + 1].end[0] and _adjacent(
            toks, strings[j], strings[j + 1]):
        j += 1
    return strings[i: j + 1]


def _adjacent(toks: Tokens, a: tokenize.TokenInfo, b: tokenize.TokenInfo) -> bool:
    if b.start[0] == a.end[0]:
        return a.line[a.end[1]: b.start[1]].strip() == ""
    return (
        b.start[0] == a.end[0] + 1
        and a.line[a.end[1] :].strip() == ""
        and b.line[: b.start[1]].strip() == ""
        and a.end[0] not in toks.comments
    )


def split_string(run: list[tokenize.TokenInfo], lines: list[str],
                 limit: int) -> tuple[int, int, list[str]] | None:
    "The literals of `run` joined and cut again at spaces into lines that fit; None when they can't."
    parts = [_STRING.fullmatch(tok.string) for tok in run]
    if not all(parts) or len({(m.group(1).lower().replace("f", ""), m.group(2)) for m in parts if m}) != 1:
        return None
    prefix = parts[0].group(1).lower().replace("f", "") if parts[0] else ""
    if "b" in prefix or any(m.group(3).startswith(m.group(2) * 2) for m in parts if m):
        return None
    quote = parts[0].group(2) if parts[0] else '"'
    fstring = any("f" in m.group(1).lower() for m in parts if m)
    body = "".join(m.group(3) if "f" in m.group(1).lower() or not fstring
                   else m.group(3).replace("{", "{{").replace("}", "}}") for m in parts if m)
    first, last = run[0].start[0], run[-1].end[0]
    head, tail = lines[first - 1][: run[0].start[1]], lines[last - 1][run[-1].end[1]:]
    pad = " " * width(head)
    if width(pad) > limit * 3 // 5:  # pieces squeezed against the right edge: leave it to ruff
        return None
    # cut points: after a space, outside {...} of an f-string, never inside an escape
    cuts, depth, i = [], 0, 0
    while i < len(body):
        if fstring and body.startswith(("{{", "}}"), i) and depth == 0:
            i += 2
            continue
        ch = body[i]
        if ch == "\\":
            i += 2
            continue
        if fstring and ch == "{":
            depth += 1
        elif fstring and ch == "}":
            depth -= 1
        elif ch == " " and depth == 0 and i + 1 < len(body) and body[i + 1] != " ":
            cuts.append(i + 1)
        i += 1
    room = limit - width(pad) - len(prefix) - 3  # quotes, and an `f` where needed
    pieces, start = [], 0
    while start < len(body):
        if width(body[start:]) <= room - width(tail.rstrip()):
            pieces.append(body[start:])
            break
        fitting = [c for c in cuts if c > start and width(body[start:c]) <= room]
        if not fitting:
            return None
        pieces.append(body[start: fitting[-1]])
        start = fitting[-1]

    def literal(piece: str) -> str:
        if fstring and "{" in piece.replace("{{", "").replace("}}", ""):
            return f"{prefix}f{quote}{piece}{quote}"
        if fstring:
            piece = piece.replace("{{", "{").replace("}}", "}")
        return f"{prefix}{quote}{piece}{quote}"

    if not pieces:
        return None
    out = [(head if k == 0 else pad) + literal(piece) for k, piece in enumerate(pieces)]
    out[-1] += tail
    return first, last, out


@dataclass
class Result:
    "One cell or file after fitting."

    text: str
    fixed: int = 0
    left: list[tuple[int, int, str]] = field(default_factory=list)  # (line, width, why)
    kinds: dict[str, int] = field(default_factory=dict)  # kind of fix -> how many changes


def fit(text: str, limit: int = LIMIT) -> Result:
    "Fit the lines of one cell or file `text` to `limit` columns, keeping its AST; see the module docstring."
    key = ast_key(text)
    if key is None:
        return Result(text, left=[(n, width(line), "cell or file does not parse (or is a %% cell)")
                                  for n, line in enumerate(text.split("\n"), 1) if width(line) > limit])
    result, given_up, reasons = Result(text), set(), []

    def take(lines: list[str], changes: list[tuple[int, int, list[str], str]]) -> str:
        "Apply `changes` (bottom up: each leaves the line numbers above it alone) and count them."
        for first, last, new, kind in changes:
            result.fixed += sum(width(line) > limit for line in lines[first - 1: last]) - sum(
                width(line) > limit for line in new)
            result.kinds[kind] = result.kinds.get(kind, 0) + 1
            lines = lines[: first - 1] + new + lines[last:]
        return "\n".join(lines)

    def give_up(lines: list[str], n: int) -> None:
        given_up.add(lines[n - 1])
        reasons.append((lines[n - 1], why_left(lines, n, toks, tree)))

    while True:
        lines = result.text.split("\n")
        todo = [n for n, line in enumerate(lines, 1) if width(line) > limit and line not in given_up][::-1]
        if not todo:
            break
        toks, tree = scan(result.text), statements(ast.parse(mask_magics(result.text) or ""))
        # a round: the first shortening change of every long line, bottom up, none overlapping another, with
        # one
        # AST check for the round; line by line (an AST check per change) only when that check fails
        batch: list[tuple[int, int, list[str], str]] = []
        floor, first_n = len(lines) + 1, 0
        for n in todo:
            if n >= floor:
                continue
            blocked = False
            for change in candidates(lines, n, toks, tree, limit) if toks else ():
                first, last, new, _ = change
                if overflow(new, limit) >= overflow(lines[first - 1: last], limit):
                    continue
                if last >= floor:
                    blocked = True
                    continue
                batch.append(change)
                floor, first_n = first, first_n or n
                break
            else:
                if not blocked:
                    give_up(lines, n)
        if not batch:
            continue
        merged = lines
        for first, last, new, _ in batch:
            merged = merged[: first - 1] + new + merged[last:]
        if ast_key("\n".join(merged)) == key:
            result.text = take(lines, batch)
            continue
        for change in candidates(lines, first_n, toks, tree, limit):
            first, last, new, _ = change
            candidate = "\n".join(lines[: first - 1] + new + lines[last:])
            if overflow(new, limit) < overflow(lines[first - 1: last], limit) and ast_key(candidate) == key:
                result.text = take(lines, [change])
                break
        else:
            give_up(lines, first_n)
    why_of = {line: why for line, why in reasons}
    result.left = [(n, width(line), why_of.get(line, "no fix found"))
                   for n, line in enumerate(result.text.split("\n"), 1) if width(line) > limit]
    return result


def candidates(lines: list[str], n: int, toks: Tokens, tree: list[ast.stmt],
               limit: int) -> Iterator[tuple[int, int, list[str], str]]:
    "Changes that could fit line `n`, as (first line, last line, new lines, kind of fix), best first."
    line = lines[n - 1]
    indent = _indent(line)
    comment = toks.comments.get(n)
    if n in toks.in_string:
        return
    if comment is not None and n not in toks.code_starts:  # a comment line
        if not comment.string.startswith(("#|", "#!")):
            after = toks.comments.get(n + 1)
            if (after is not None and n + 1 not in toks.code_starts and after.start[1] == comment.start[1]
                    and not re.match(r"#(\s*([-*•]|\d+[.)])\s|\|)", after.string)
                    and not comment.string.rstrip().endswith(":")):  # the next comment line goes on with it
                wrapped = wrap_comment(comment.string + " " + after.string.lstrip("#").strip(),
                                       line[: comment.start[1]], limit)
                if wrapped:
                    yield n, n + 1, wrapped, "comment wrapped"
            wrapped = wrap_comment(comment.string, line[: comment.start[1]], limit)
            if wrapped:
                yield n, n, wrapped, "comment wrapped"
        return
    span = _smallest_span(tree, lines, n, toks)
    pairs = [p for p in toks.pairs if p[0].start[0] <= n <= p[1].start[0] and _crosses(line, n, p, limit)]
    if comment is not None:
        code = line[: comment.start[1]].rstrip()
        # a parameter's comment: one parameter a line, comment beside
        if span and span[2] in ("def", "async"):
            params = [p for p in pairs if p[2] == 1 and p[0].start[0] == span[0] and p[0].string == "("]
            new = refill(lines, toks, params[0], limit) if params else None
            if new and overflow(new[2], limit) == 0:
                yield (*new, "signature refilled")
            # a signature already laid out one parameter a line with comments keeps its layout
            aligned = sum(k in toks.comments for k in range(span[0], span[1] + 1)) > 1
            new_lines = None if aligned else format_span(lines, span[0], span[1], toks, limit, header=span[2])
            if new_lines and overflow(new_lines, limit) == 0:
                yield span[0], span[1], new_lines, "signature by ruff"
        if width(code) <= limit and span is not None and span[1] == n and span[0] < n and not span[2]:
            # the comment ends a statement of several lines: it goes above the statement
            above = wrap_comment(comment.string, _indent(lines[span[0] - 1]), limit)
            if above:
                yield span[0], n, above + lines[span[0] - 1: n - 1] + [code], "comment moved above"
        if width(code) <= limit:
            above = wrap_comment(comment.string, indent, limit)
            if above:
                yield n, n, above + [code], "comment moved above"
    if span is not None and not span[2] and _is_string_statement(tree, span[0]):
        return
    parts = split_statements(lines, n, tree)
    if parts is not None:
        yield n, n, parts, "statements split at `;`"
    if span is not None and span[2] == "oneline":  # `if x: y` too long: y goes on a line of its own
        unfolded = unfold(lines, span[0], span[1], tree, toks)
        if unfolded is not None:
            yield span[0], span[1], unfolded, "one-line if unfolded"
    partial: list[tuple[int, int, list[str], str]] = []  # changes that shorten without fitting: tried last
    # the house-style layout of the brackets around the line: the fewest lines changed first, then the
    # outermost
    for pair in sorted(pairs, key=lambda p: (p[1].start[0] - p[0].start[0], p[2], p[0].start)):
        for new, kind in ((refill(lines, toks, pair, limit), "brackets refilled"),
                          (break_for(lines, toks, pair, limit), "comprehension broken before `for`")):
            if new is None or new[2] == lines[new[0] - 1: new[1]]:
                continue
            if overflow(new[2], limit):
                partial.append((*new, kind))
            else:
                yield (*new, kind)
    # string literals ending a line's code, inside brackets: joined and cut again at spaces
    run = string_run(toks, n)
    depth = {tok.start: d for tok, d in toks.strings}
    rest = lines[run[-1].end[0] - 1][run[-1].end[1]:] if run else ""
    # inside brackets, where the pieces may go on lines of their own, and not an operand (`"..." if x else y`)
    if run and depth[run[0].start] > 0 and not re.search(r"\b(if|else|for|and|or|in|is|not)\b|[-+*/%.@<>=]",
                                                         rest.split("#")[0]):
        new = split_string(run, lines, limit)
        if new is not None and new[2] != lines[new[0] - 1: new[1]]:
            yield (*new, "string split")
    elif len(run) == 1 and span is not None and span[0] == span[1] == n and not span[2] and comment is None:
        # `x = "..."` or `return f"..."`: the literal goes in parentheses, where it may be split
        tok = run[0]
        (row, a), (_, b) = tok.start, tok.end
        if line[b:].strip() == "" and re.search(r"(=|return|yield|assert .*,)\s*$", line[:a]):
            wrapped = lines[: n - 1] + [f"{line[:a]}({tok.string})"]
            moved = tokenize.TokenInfo(tok.type, tok.string, (row, a + 1), (row, b + 1), wrapped[-1])
            new = split_string([moved], wrapped, limit)
            if new is not None:
                yield (*new, "string split")
    if span is not None:
        first, last, header = span
        new_lines = format_span(lines, first, last, toks, limit, header=header)
        if new_lines is not None and new_lines != lines[first - 1: last]:
            if overflow(new_lines, limit):
                partial.append((first, last, new_lines, "statement by ruff"))
            else:
                yield first, last, new_lines, "statement by ruff"
    yield from partial


def why_left(lines: list[str], n: int, toks: Tokens | None, tree: list[ast.stmt] | None) -> str:
    "Why line `n` is still long, for the report."
    if toks is None or tree is None:
        return "does not tokenize"
    comment = toks.comments.get(n)
    if n in toks.in_string:
        return "inside a multi-line string"
    if comment is not None and n not in toks.code_starts:
        return (
            "nbdev directive" if comment.string.startswith("#|") else "comment with a word too long to wrap"
        )
    span = _smallest_span(tree, lines, n, toks)
    if span is not None and not span[2] and _is_string_statement(tree, span[0]):
        return "docstring or string statement"
    if any(tok.start[0] == n for tok, _ in toks.strings):
        return "long string literal"
    return "no fix keeps the AST and fits"


# ------------------------------------------------------------------------------------------------------------
# Files and notebooks


def _dump_notebook(nb: dict) -> str:
    return json.dumps(nb, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def sources(paths: list[str]) -> list[Path]:
    "The notebooks and Python files to fit: `paths` when given, else every source the module docstring names."
    if paths:
        return [Path(p).resolve() for p in paths]
    found = sorted((ROOT / "nbs").rglob("*.ipynb"))
    for folder in PY_FOLDERS:
        found += sorted((ROOT / folder).rglob("*.py"))
    return [p for p in found if ".ipynb_checkpoints" not in p.parts]


def generated_modules() -> list[Path]:
    "The modules `nbdev_export` writes (checked, never fixed: their notebooks are the source)."
    return sorted(p for p in (ROOT / "strategy_engine").rglob("*.py") if p.name != "_modidx.py")


def long_lines_of_module(path: Path, limit: int) -> list[tuple[int, int]]:
    "(line, width) of each long line of a generated module, outside the `__all__` list nbdev wraps itself."
    out, in_all = [], False
    for n, line in enumerate(path.read_text(encoding="utf-8").split("\n"), 1):
        if line.startswith("__all__ = ["):
            in_all = True
        if not in_all and width(line) > limit:
            out.append((n, width(line)))
        if in_all and line.rstrip().endswith("]"):
            in_all = False
    return out


def checked(res: Result, before: str, where: str) -> Result:
    "`res`, or `before` unchanged (with a refusal in the report) when its AST differs from that of `before`."
    if res.text == before or ast_key(res.text) == ast_key(before):
        return res
    return Result(before,
                  left=[(0, 0, f"{where}: change refused, the AST would differ (a bug in fit_lines)")])


def _name(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def main(argv: list[str] | None = None) -> int:
    "Command line: fit (default) or `--check` the given or default sources."
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("paths", nargs="*",
                    help="notebooks or .py files (default: nbs/, tests bench tools scripts)")
    ap.add_argument("--check", action="store_true", help="change nothing; list long lines, exit 1 if any")
    ap.add_argument("--limit", type=int, default=LIMIT, help=f"columns (default {LIMIT})")
    args = ap.parse_args(argv)
    if args.limit < 40:
        ap.error(f"--limit {args.limit}: give at least 40 columns")
    missing = [p for p in args.paths if not Path(p).exists() or Path(p).suffix not in (".ipynb", ".py")]
    if missing:
        ap.error(f"not an existing .ipynb or .py file: {', '.join(missing)}")
    if not RUFF.exists() and not args.check:
        ap.error(f"{_name(RUFF)} not found: run `make test` once (it installs the pinned ruff)")
    cells_changed = files_changed = fixed = 0
    kinds: dict[str, int] = {}
    left: list[str] = []
    for path in sources(args.paths):
        if path.suffix == ".ipynb":
            raw = path.read_text(encoding="utf-8")
            nb = json.loads(raw)
            changed = False
            for i, cell in enumerate(nb["cells"]):
                if cell["cell_type"] != "code":
                    continue
                text = "".join(cell["source"])
                if all(width(line) <= args.limit for line in text.split("\n")):
                    continue
                if args.check:
                    left += [f"{_name(path)} cell {i} line {n} ({width(line)} columns)"
                             for n, line in enumerate(text.split("\n"), 1) if width(line) > args.limit]
                    continue
                res = checked(fit(text, args.limit), text, f"{_name(path)} cell {i}")
                kinds = {k: kinds.get(k, 0) + res.kinds.get(k, 0) for k in {*kinds, *res.kinds}}
                left += [f"{_name(path)} cell {i} line {n} ({w} columns): {why}" for n, w, why in res.left]
                if res.text != text:
                    cell["source"] = [line + "\n" for line in res.text.split("\n")[:-1]] + (
                        [res.text.split("\n")[-1]] if not res.text.endswith("\n") else [])
                    cells_changed, fixed, changed = cells_changed + 1, fixed + res.fixed, True
            if changed:
                path.write_text(_dump_notebook(nb), encoding="utf-8")
                files_changed += 1
        else:
            text = path.read_text(encoding="utf-8")
            if all(width(line) <= args.limit for line in text.split("\n")):
                continue
            if args.check:
                left += [f"{_name(path)} line {n} ({width(line)} columns)"
                         for n, line in enumerate(text.split("\n"), 1) if width(line) > args.limit]
                continue
            res = checked(fit(text, args.limit), text, _name(path))
            kinds = {k: kinds.get(k, 0) + res.kinds.get(k, 0) for k in {*kinds, *res.kinds}}
            left += [f"{_name(path)} line {n} ({w} columns): {why}" for n, w, why in res.left]
            if res.text != text:
                path.write_text(res.text, encoding="utf-8")
                files_changed, cells_changed, fixed = files_changed + 1, cells_changed + 1, fixed + res.fixed
    if args.check and not args.paths:
        left += [f"{_name(p)} line {n} ({w} columns; fix its notebook)"
                 for p in generated_modules() for n, w in long_lines_of_module(p, args.limit)]
    if left:
        print("\n".join(left))
    if args.check:
        if not left:
            print(f"fit_lines: every line fits in {args.limit} columns")
            return 0
        print(f"{len(left)} line(s) over {args.limit} columns: run `.venv/bin/python tools/fit_lines.py`, "
              "then fix by hand what it lists")
        return 1
    print(f"{cells_changed} cell(s) or file(s) changed in {files_changed} file(s); {fixed} line(s) fitted; "
          f"{len(left)} left over {args.limit} columns")
    if kinds:
        print("changes: " + ", ".join(f"{kind} {k}" for kind, k in sorted(kinds.items())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
