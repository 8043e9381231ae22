"""One table model, four renderings: Markdown, LaTeX (booktabs), HTML and CSV.

A :class:`Table` has row-label columns (``stub``), value columns (``columns``), optionally grouped under a first
header row (``groups``: dataset names over their IPC columns, as in the papers), and rows whose cells are
:class:`~atombench.report.stats.Stat` (mean ± std, bold when best, † when not significantly different from the
best), plain strings, or None (missing: an en dash). Rows of different ``kind`` (coresets, distillers, the whole
dataset) are separated by a rule in LaTeX and HTML. Published rows are in italics.
"""

from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass, field

import pandas as pd

from .stats import Stat

DASH = "–"


@dataclass
class Row:
    labels: list[str]
    cells: list[Stat | str | None]
    kind: str = ""
    published: bool = False


@dataclass
class Table:
    name: str  # file stem under tables/
    title: str
    stub: list[str]
    columns: list[str]
    rows: list[Row] = field(default_factory=list)
    groups: list[tuple[str, int]] = field(default_factory=list)
    caption: str = ""
    notes: list[str] = field(default_factory=list)
    precision: int = 1
    #: cells with another number of samples than this one say their n
    n_common: int | None = None
    #: what the CSV holds (tidy numbers); defaults to the shown text
    frame: pd.DataFrame | None = None

    def header(self) -> list[str]:
        """One header row: group and column joined (``digits IPC 1``)."""
        if not self.groups:
            return self.stub + self.columns
        joined, i = [], 0
        for group, span in self.groups:
            joined += [f"{group} {c}" for c in self.columns[i:i + span]]
            i += span
        return self.stub + joined

    def text_frame(self) -> pd.DataFrame:
        body = [r.labels + [_plain(c, self) for c in r.cells] for r in self.rows]
        return pd.DataFrame(body, columns=self.header())


def _n_suffix(cell: Stat, table: Table) -> str:
    """`` (n=2)`` for a cell of ours with fewer samples than the others (published cells have n = 0)."""
    return f" (n={cell.n})" if table.n_common is not None and 0 < cell.n != table.n_common else ""


def _plain(cell, table: Table) -> str:
    if cell is None:
        return DASH
    if isinstance(cell, Stat):
        return cell.text(table.precision) + _n_suffix(cell, table)
    return str(cell)


# -- Markdown ------------------------------------------------------------------------------------------------
def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def _md_cell(cell, table: Table, published: bool) -> str:
    if not isinstance(cell, Stat):
        text = _md_escape(_plain(cell, table))
        return f"*{text}*" if published and cell is not None else text
    text = cell.text(table.precision)
    if published:
        text = f"*{text}*"
    elif cell.best:
        text = f"**{text}**"
    elif cell.tied:
        text += "†"
    return text + _n_suffix(cell, table)


def to_markdown(table: Table) -> str:
    header = [_md_escape(h) for h in table.header()]
    align = ["---"] * len(table.stub) + ["---:"] * (len(header) - len(table.stub))
    lines = [f"### {table.title}", "", "| " + " | ".join(header) + " |", "|" + "|".join(align) + "|"]
    for row in table.rows:
        labels = [f"*{_md_escape(x)}*" if row.published and x else _md_escape(x) for x in row.labels]
        cells = [_md_cell(c, table, row.published) for c in row.cells]
        lines.append("| " + " | ".join(labels + cells) + " |")
    if not table.rows:
        lines.append("| " + " | ".join(["(no rows)"] + [""] * (len(header) - 1)) + " |")
    out = "\n".join(lines) + "\n"
    if table.caption:
        out += "\n" + table.caption + "\n"
    for note in table.notes:
        out += "\n" + note + "\n"
    return out


# -- LaTeX ---------------------------------------------------------------------------------------------------
_TEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}
_TEX_SYMBOLS = {"±": r"$\pm$", "†": r"$^\dagger$", "≥": r"$\geq$", "≤": r"$\leq$", "×": r"$\times$",
                "α": r"$\alpha$", "ρ": r"$\rho$", "–": "--", "—": "---", "’": "'", "…": r"\ldots{}",
                "→": r"$\rightarrow$", "≈": r"$\approx$", "−": r"$-$", "·": r"$\cdot$", "²": r"$^2$",
                "Δ": r"$\Delta$", "σ": r"$\sigma$", "μ": r"$\mu$"}


def tex_escape(text: str) -> str:
    """Escape LaTeX specials and map the few non-ASCII symbols we write to math macros (pdflatex-safe)."""
    out = "".join(_TEX_SPECIAL.get(ch, ch) for ch in str(text))
    for sym, macro in _TEX_SYMBOLS.items():
        out = out.replace(sym, macro)
    # pdflatex stops at any other non-ASCII character: its ASCII decomposition where it has one (é -> e), else '?'
    if not out.isascii():
        out = "".join(ch if ch.isascii() else (unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
                                                 or "?") for ch in out)
    return out


def tex_caption(text: str) -> str:
    """A caption: escaped, with its Markdown **bold** and *italic* as LaTeX."""
    out = re.sub(r"\*\*(.+?)\*\*", r"\\textbf{\1}", tex_escape(text))
    return re.sub(r"\*(.+?)\*", r"\\textit{\1}", out)


def _tex_cell(cell, table: Table, published: bool) -> str:
    if not isinstance(cell, Stat):
        text = tex_escape(_plain(cell, table))
        return rf"\textit{{{text}}}" if published and cell is not None else text
    text = tex_escape(cell.text(table.precision))
    if published:
        text = rf"\textit{{{text}}}"
    elif cell.best:
        text = rf"\textbf{{{text}}}"
    elif cell.tied:
        text += r"$^\dagger$"
    return text + tex_escape(_n_suffix(cell, table))


def to_latex(table: Table) -> str:
    """A ``table`` environment using booktabs (``\\usepackage{booktabs}``); nothing else is needed."""
    ncol = len(table.stub) + len(table.columns)
    spec = "l" * len(table.stub) + "r" * len(table.columns)
    # wide tables (the claims table: 11 columns) in a smaller font with narrower gaps, so that they fit the page
    size = [r"  \small"] if ncol < 11 else [r"  \footnotesize", r"  \setlength{\tabcolsep}{3pt}"]
    lines = ["% generated by atombench report; needs \\usepackage{booktabs}",
             r"\begin{table}[t]", r"  \centering", *size,
             rf"  \caption{{{tex_escape(table.title)}. {tex_caption(table.caption)}}}",
             rf"  \label{{tab:atombench-{re.sub(r'[^A-Za-z0-9-]', '-', table.name)}}}",
             rf"  \begin{{tabular}}{{{spec}}}", r"    \toprule"]
    if table.groups:
        first = len(table.stub) + 1
        heads, rules = [""] * len(table.stub), []
        for group, span in table.groups:
            heads.append(rf"\multicolumn{{{span}}}{{c}}{{{tex_escape(group)}}}")
            rules.append(rf"\cmidrule(lr){{{first}-{first + span - 1}}}")
            first += span
        lines.append("    " + " & ".join(heads) + r" \\")
        lines.append("    " + " ".join(rules))
    lines.append("    " + " & ".join(tex_escape(h) for h in table.stub + table.columns) + r" \\")
    lines.append(r"    \midrule")
    prev = None
    for row in table.rows:
        if prev is not None and row.kind != prev:
            lines.append(r"    \midrule")
        prev = row.kind
        labels = [rf"\textit{{{tex_escape(x)}}}" if row.published and x else tex_escape(x) for x in row.labels]
        lines.append("    " + " & ".join(labels + [_tex_cell(c, table, row.published) for c in row.cells]) + r" \\")
    if not table.rows:
        lines.append(rf"    \multicolumn{{{ncol}}}{{c}}{{(no rows)}} \\")
    lines += [r"    \bottomrule", r"  \end{tabular}", r"\end{table}"]
    for note in table.notes:
        lines.append("% " + note.replace("\n", " "))
    return "\n".join(lines) + "\n"


def latex_document(names: list[str]) -> str:
    """A standalone document that inputs the table files ``names`` (``tables/<name>.tex``)."""
    body = "\n".join(rf"\input{{{n}.tex}}" + "\n\\clearpage" for n in names)
    return ("% generated by atombench report: pdflatex tables.tex\n"
            "\\documentclass{article}\n\\usepackage[margin=1.5cm,landscape]{geometry}\n"
            "\\usepackage{booktabs}\n\\begin{document}\n" + body + "\n\\end{document}\n")


# -- HTML ----------------------------------------------------------------------------------------------------
def _html_inline(text: str) -> str:
    out = html.escape(str(text))
    out = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", out)
    out = re.sub(r"\*(.+?)\*", r"<i>\1</i>", out)
    return out


def _html_cell(cell, table: Table, published: bool) -> str:
    if not isinstance(cell, Stat):
        return html.escape(_plain(cell, table))
    text = html.escape(cell.text(table.precision))
    if published:
        pass
    elif cell.best:
        text = f"<b>{text}</b>"
    elif cell.tied:
        text += "<sup>†</sup>"
    title = f' title="p = {cell.p:.3g}"' if cell.p is not None else ""
    return f"<span{title}>{text}{html.escape(_n_suffix(cell, table))}</span>"


def to_html(table: Table) -> str:
    out = [f'<table class="booktabs" id="table-{html.escape(table.name)}">',
           f"<caption><b>{html.escape(table.title)}.</b> {_html_inline(table.caption)}</caption>", "<thead>"]
    if table.groups:
        out.append("<tr>" + "<th></th>" * len(table.stub) + "".join(
            f'<th colspan="{span}" class="group">{html.escape(g)}</th>' for g, span in table.groups) + "</tr>")
    out.append("<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in table.stub) +
               "".join(f'<th class="num">{html.escape(h)}</th>' for h in table.columns) + "</tr>")
    out.append("</thead><tbody>")
    prev = None
    for row in table.rows:
        cls = []
        if prev is not None and row.kind != prev:
            cls.append("rule")
        if row.published:
            cls.append("published")
        prev = row.kind
        attr = f' class="{" ".join(cls)}"' if cls else ""
        out.append(f"<tr{attr}>" + "".join(f"<td>{html.escape(x)}</td>" for x in row.labels) +
                   "".join(f'<td class="num">{_html_cell(c, table, row.published)}</td>' for c in row.cells) +
                   "</tr>")
    if not table.rows:
        out.append(f'<tr><td colspan="{len(table.stub) + len(table.columns)}">(no rows)</td></tr>')
    out.append("</tbody></table>")
    out += [f'<p class="note">{_html_inline(n)}</p>' for n in table.notes]
    return "\n".join(out)


def to_csv(table: Table) -> str:
    frame = table.frame if table.frame is not None else table.text_frame()
    return frame.to_csv(index=False)
