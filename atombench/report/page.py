"""The report's pages: ``index.html`` (tables and figures together, one self-contained file beside its
``plots/`` and ``tables/`` folders) and ``report.md`` (the same in Markdown, e.g. for a repository)."""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path

from .plots import Plot
from .render import Table, _html_inline, to_html, to_markdown

CSS = """
:root { --ink: #1f2328; --muted: #59636e; --rule: #1f2328; --light: #d0d7de; --accent: #0b5fad; }
* { box-sizing: border-box; }
body { margin: 0; color: var(--ink); background: #fff;
       font: 15px/1.5 -apple-system, "Segoe UI", "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 24px 64px; }
h1 { font-size: 1.7em; margin: 0 0 4px; } h2 { margin-top: 2.2em; border-bottom: 1px solid var(--light);
padding-bottom: 4px; } h3 { margin-top: 1.6em; }
.meta, .note, figcaption, caption { color: var(--muted); font-size: 0.92em; }
nav a { margin-right: 14px; color: var(--accent); text-decoration: none; }
a { color: var(--accent); }
.missing { background: #fff8c5; border: 1px solid #eac54f; border-radius: 6px; padding: 10px 16px; }
.missing li { margin: 2px 0; }
.scroll { overflow-x: auto; }
table.booktabs { border-collapse: collapse; margin: 12px 0 4px; font-variant-numeric: tabular-nums;
                 border-top: 2px solid var(--rule); border-bottom: 2px solid var(--rule); }
table.booktabs caption { caption-side: bottom; text-align: left; padding-top: 8px; max-width: 1100px; }
table.booktabs th, table.booktabs td { padding: 4px 12px; text-align: left; white-space: nowrap; }
table.booktabs th.num, table.booktabs td.num { text-align: right; }
table.booktabs thead tr:last-child th { border-bottom: 1px solid var(--rule); }
table.booktabs th.group { text-align: center; border-bottom: 1px solid var(--light); }
table.booktabs tr.rule td { border-top: 1px solid var(--rule); }
table.booktabs tr.published td { color: var(--muted); font-style: italic; }
table.booktabs tbody tr:hover td { background: #f6f8fa; }
figure { margin: 18px 0; } figure img { max-width: 100%; height: auto; border: 1px solid var(--light); }
.downloads { font-size: 0.9em; } details { margin: 10px 0; } summary { cursor: pointer; color: var(--accent); }
.grid { display: flex; flex-wrap: wrap; gap: 12px; } .grid figure { margin: 0; max-width: 380px; }
"""


@dataclass
class Section:
    id: str
    title: str
    intro: str = ""
    tables: list[Table] = field(default_factory=list)
    plots: list[Plot] = field(default_factory=list)
    #: figures shown folded (e.g. one image grid per method)
    more_plots: list[Plot] = field(default_factory=list)
    more_title: str = ""


def _rel(path: Path, folder: Path) -> str:
    return Path(os.path.relpath(path, folder)).as_posix()


def _downloads(table: Table) -> str:
    links = " · ".join(f'<a href="tables/{html.escape(table.name)}.{ext}">{label}</a>'
                       for ext, label in (("md", "Markdown"), ("tex", "LaTeX"), ("csv", "CSV")))
    return f'<p class="downloads">Download: {links}</p>'


def _figure(plot: Plot, folder: Path) -> str:
    pdf = f' · <a href="{html.escape(_rel(plot.pdf, folder))}">PDF</a>' if plot.pdf else ""
    return (f'<figure><img src="{html.escape(_rel(plot.png, folder))}" alt="{html.escape(plot.title)}">'
            f"<figcaption><b>{html.escape(plot.title)}.</b> {html.escape(plot.caption)}{pdf}</figcaption></figure>")


def html_page(folder: Path, title: str, meta: list[str], notes: list[str], sections: list[Section]) -> str:
    parts = ["<!doctype html>", '<html lang="en">', "<head>", '<meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             f"<title>{html.escape(title)}</title>", f"<style>{CSS}</style>", "</head>", "<body><main>",
             f"<h1>{html.escape(title)}</h1>"]
    parts += [f'<p class="meta">{_html_inline(m)}</p>' for m in meta]
    shown = [s for s in sections if s.tables or s.plots or s.more_plots]
    if shown:
        parts.append("<nav>" + "".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in shown) + "</nav>")
    if notes:
        parts.append('<section id="missing"><h2>What is missing</h2><ul class="missing">' +
                     "".join(f"<li>{html.escape(n)}</li>" for n in notes) + "</ul></section>")
    for s in shown:
        parts.append(f'<section id="{html.escape(s.id)}"><h2>{html.escape(s.title)}</h2>')
        if s.intro:
            parts.append(f"<p>{_html_inline(s.intro)}</p>")
        for t in s.tables:
            parts += [f'<div class="scroll">{to_html(t)}</div>', _downloads(t)]
        parts += [_figure(p, folder) for p in s.plots]
        if s.more_plots:
            parts.append(f"<details><summary>{html.escape(s.more_title)}</summary><div class=\"grid\">" +
                         "".join(_figure(p, folder) for p in s.more_plots) + "</div></details>")
        parts.append("</section>")
    if not shown and not notes:
        parts.append("<p>Nothing to show.</p>")
    parts.append("</main></body></html>")
    return "\n".join(parts) + "\n"


def markdown_page(folder: Path, title: str, meta: list[str], notes: list[str], sections: list[Section]) -> str:
    out = [f"# {title}", ""] + [m + "  " for m in meta] + [""]
    if notes:
        out += ["## What is missing", ""] + [f"- {n}" for n in notes] + [""]
    for s in sections:
        if not (s.tables or s.plots or s.more_plots):
            continue
        out += [f"## {s.title}", ""]
        if s.intro:
            out += [s.intro, ""]
        for t in s.tables:
            out += [to_markdown(t).replace("### ", "#### ", 1),
                    f"[Markdown](tables/{t.name}.md) · [LaTeX](tables/{t.name}.tex) · [CSV](tables/{t.name}.csv)", ""]
        for p in s.plots + s.more_plots:
            out += [f"![{p.title}]({_rel(p.png, folder)})", "", f"*{p.title}.* {p.caption}", ""]
    return "\n".join(out).rstrip() + "\n"
