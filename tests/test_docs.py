"""The repository stands alone: nothing in it points at the team's notes outside it, and every relative link of
the Markdown pages, and every ``docs/<page>.md#<section>`` that code, suites or data cite, resolves.

``docs/README.md`` explains the anchors: GitHub's heading slugs (lower case, punctuation dropped, spaces to
hyphens). ``test_no_file_points_outside_the_repository`` lists every offending line (file:line).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: what pointed outside the repository (the notes' path and name, and their "reference section N" citations);
#: split so that this file does not match itself
OUTSIDE = ("shared/" + "reference", "atom" + "_spec")
OUTSIDE_CITATION = re.compile("reference" + r"\s+sections?\s+\d")
#: the Markdown pages whose relative links must resolve (docs/ recursively)
PAGES = ("README.md", "CONTRIBUTING.md", "benchmarks/README.md")
FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
INLINE_LINK = re.compile(r"\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s+\"[^\"]*\")?\s*$")
CITATION = re.compile(r"\bdocs/[\w./-]*?\.md(?:#[\w-]+)?")
#: the CSV form (``#`` starts a comment there): ``docs/<page>.md section <anchor>``
CSV_CITATION = re.compile(r"\b(docs/[\w./-]*?\.md) section ([\w-]+)")


def tracked_files() -> list[Path]:
    try:
        out = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout (git ls-files failed)")
    return [ROOT / p for p in out.decode().split("\0") if p and (ROOT / p).is_file()]


def text_of(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None  # binary
    return data.decode("utf-8", errors="replace")


def prose_lines(text: str) -> list[tuple[int, str]]:
    """(line number, line) outside fenced code blocks, inline code spans removed."""
    out, fenced = [], False
    for n, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            out.append((n, re.sub(r"`+[^`]*`+", "", line)))
    return out


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text.strip().lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    out = set()
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        m = None if fenced else HEADING.match(line)
        if m:
            base = slug(m.group(2))
            k = seen.get(base, 0)
            seen[base] = k + 1
            out.add(base if k == 0 else f"{base}-{k}")
    out.update(re.findall(r"<a\s+(?:name|id)=\"([^\"]+)\"", page.read_text(encoding="utf-8")))
    return out


def markdown_pages() -> list[Path]:
    pages = [ROOT / p for p in PAGES if (ROOT / p).is_file()]
    return pages + sorted((ROOT / "docs").rglob("*.md"))


def problem_with(target: str, base: Path, where: str) -> str | None:
    """Why the relative link ``target`` (from a file in folder ``base``) does not resolve, or None."""
    path, _, anchor = target.partition("#")
    dest = (base / path).resolve() if path else None
    if dest is not None and not dest.exists():
        return f"{where}: {target}: no such file or folder"
    if anchor and dest is not None and dest.suffix == ".md" and anchor not in anchors(dest):
        return f"{where}: {target}: no section #{anchor} in {dest.relative_to(ROOT)}"
    return None


def test_no_file_points_outside_the_repository():
    offenders = []
    for path in tracked_files():
        text = text_of(path)
        if text is None:
            continue
        lines = text.splitlines()
        hits = {n for n, line in enumerate(lines, 1) if any(s in line for s in OUTSIDE)}
        hits |= {text.count("\n", 0, m.start()) + 1 for m in OUTSIDE_CITATION.finditer(text)}  # may span lines
        offenders += [f"{path.relative_to(ROOT)}:{n}: {lines[n - 1].strip()[:120]}" for n in sorted(hits)]
    assert not offenders, ("these lines point at notes outside the repository; point them at the matching page "
                           "and section of docs/ instead (docs/README.md lists the pages):\n  "
                           + "\n  ".join(offenders))


def test_markdown_links_resolve():
    broken = []
    for page in markdown_pages():
        text = page.read_text(encoding="utf-8")
        for n, line in prose_lines(text):
            targets = INLINE_LINK.findall(line)
            m = REFERENCE_LINK.match(line)
            targets += [m.group(1)] if m else []
            for target in targets:
                if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", target) or target.startswith("//"):
                    continue  # http:, https:, mailto:
                if target.startswith("#"):
                    target = page.name + target
                problem = problem_with(target, page.parent, f"{page.relative_to(ROOT)}:{n}")
                if problem:
                    broken.append(problem)
    assert not broken, "broken relative links:\n  " + "\n  ".join(broken)


def test_docs_citations_resolve():
    """``docs/<page>.md#<section>`` written anywhere in the repository (docstrings, suites, published.csv)."""
    broken = []
    for path in tracked_files() + sorted((ROOT / "docs").rglob("*.md")):
        text = text_of(path)
        if text is None:
            continue
        for n, line in enumerate(text.splitlines(), 1):
            for cite in CITATION.findall(line) + [f"{f}#{a}" for f, a in CSV_CITATION.findall(line)]:
                problem = problem_with(cite, ROOT, f"{path.relative_to(ROOT)}:{n}")
                if problem:
                    broken.append(problem)
    assert not broken, "citations of docs/ that do not resolve:\n  " + "\n  ".join(sorted(set(broken)))


def test_docs_index_lists_every_page():
    index = (ROOT / "docs" / "README.md").read_text(encoding="utf-8")
    missing = [p.name for p in sorted((ROOT / "docs").glob("*.md"))
               if p.name != "README.md" and f"({p.name})" not in index]
    assert not missing, f"docs/README.md does not link {missing}"


def test_readme_example_suite_validates(tmp_path):
    """The suite file the README shows under "Suite files" passes ``atombench validate`` as written, except its
    entries for datasets that need a download (no internet here): names, options, proxies and model sizes."""
    import yaml

    from .conftest import run_cli

    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Suite files"):]
    block = re.search(r"```yaml\n(.*?)```", section, re.S).group(1)
    doc = yaml.safe_load(block)
    doc["datasets"] = [d for d in doc["datasets"]
                       if not (isinstance(d, dict) and d.get("options", {}).get("download"))]
    assert doc["datasets"], "the README's example has no offline dataset left to validate"
    suite = tmp_path / "readme_example.yaml"
    suite.write_text(yaml.safe_dump(doc))
    res = run_cli("validate", suite, cwd=tmp_path)
    assert res.returncode == 0 and ": ok (" in res.stdout, res.stderr
