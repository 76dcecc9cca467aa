"""`report.html`: the whole report on one self-contained page (no network, no other file): the
markdown of summary.md (experiments, report card, expected values, verdicts, accuracy, disparate
impact, standards) rendered as HTML, with every figure embedded as a base64 PNG.

Only the markdown that prune-report itself writes is rendered: headings, paragraphs, bullet
lists (nested by indentation), pipe tables, fenced code blocks, inline code and images; an image is
embedded only when it is one of the report's own figures, named bare (`own_figure`), else it is text."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path
from typing import Iterable, Optional

from ..core.atomic_io import atomic_write_text
from .figures import REPORT_FIGURES

STYLE = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; line-height: 1.4; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.85em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.5em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
tr:nth-child(even) td { background: #fafafa; }
pre { background: #f6f6f6; padding: 0.8em; overflow-x: auto; font-size: 0.85em; }
code { background: #f2f2f2; padding: 0 0.2em; }
img { max-width: 100%; border: 1px solid #eee; margin: 0.5em 0; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; margin-top: 1.6em; }
"""

IMAGE = re.compile(r"!\[([^\]]*)\]\(([^)]+)\)")
CODE = re.compile(r"(?<!\\)`([^`]+)(?<!\\)`")  # a backtick escaped as \` (summary.py markdown_cell) is text


def _inline(text: str) -> str:
    """Escaped text with `code` spans; an escaped backtick is a backtick of the text."""
    parts = CODE.split(text)
    return "".join(f"<code>{html.escape(p)}</code>" if i % 2 else html.escape(p.replace("\\`", "`")) for i, p in enumerate(parts))


def own_figure(src: str, figures: frozenset[str]) -> bool:
    """`src` is the bare name of one of the report's own figures (`figures`): no folder, no `..`, no
    absolute path. An image line whose target is anything else (a config value holding
    `![x](/etc/hostname)`, say) is text: embedding it copied that file into the page."""
    return src in figures and "/" not in src and "\\" not in src and src not in (".", "..")


def _image(alt: str, src: str, folder: Path, figures: frozenset[str]) -> str:
    if not own_figure(src, figures):
        return "<p>" + _inline(f"![{alt}]({src})") + "</p>"
    path = folder / src
    if path.is_symlink() or not path.is_file():
        return f"<p>(figure {html.escape(src)} missing)</p>"
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    caption = html.escape(alt)
    return f'<figure><img alt="{caption}" src="data:image/png;base64,{data}"><figcaption>{caption}</figcaption></figure>'


# A cell separator: a `|` that is not escaped as `\|` (summary.py markdown_cell).
SEPARATOR = re.compile(r"(?<!\\)\|")


def _cells(line: str) -> list[str]:
    """The cells of a markdown table row, with `\\|` back to `|`."""
    inner = line.strip()
    inner = inner[1:] if inner.startswith("|") else inner
    inner = inner[:-1] if inner.endswith("|") and not inner.endswith("\\|") else inner
    return [c.strip().replace("\\|", "|") for c in SEPARATOR.split(inner)]


LINE_BREAK = re.compile(r"(?<!\\)<br>")  # a literal `<br>` of the value is escaped as \<br> (summary.py markdown_cell)


def _cell(text: str) -> str:
    """A table cell's HTML: escaped text, with the `<br>` of a line break in the value kept as one and
    a literal `<br>` of the value shown as text."""
    return "<br>".join(_inline(part.replace("\\<br>", "<br>")) for part in LINE_BREAK.split(text))


# a markdown mark escaped at the start of an item's text (summary.item); an escaped backtick stays for `_inline`
ESCAPED_MARK = re.compile(r"^(\d*)\\([#>*+\-=|!~\[<.)])")


def _unescaped(text: str) -> str:
    """An item's text with the escape summary.item put before its leading mark taken away (`\\# x` -> `# x`,
    `1\\. x` -> `1. x`)."""
    return ESCAPED_MARK.sub(lambda m: m.group(1) + m.group(2), text, count=1)


BULLET = re.compile(r"( *)- ")  # a list item; indented, an item of the list under the item above


def _bullets(lines: list[str]) -> str:
    """A list of `- ` lines, each line indented more than an item nested under it (the scaling
    section's "  - " lines under a family)."""

    def indent(line: str) -> int:
        return len(BULLET.match(line).group(1))

    out, i = ["<ul>"], 0
    while i < len(lines):
        j = i + 1
        while j < len(lines) and indent(lines[j]) > indent(lines[i]):
            j += 1
        nested = _bullets(lines[i + 1 : j]) if j > i + 1 else ""
        out.append(f"<li>{_inline(_unescaped(lines[i].lstrip()[2:]))}{nested}</li>")
        i = j
    return "".join(out) + "</ul>"


def markdown_to_html(markdown: str, folder: Path, title: str, figures: Optional[Iterable[str]] = None) -> str:
    """The HTML page of prune-report's markdown; images are read from `folder` and embedded, only those named
    by `figures` (bare file names; default: every figure the report draws, figures.REPORT_FIGURES)."""
    figures = REPORT_FIGURES if figures is None else frozenset(figures)
    lines = markdown.splitlines()
    body: list[str] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            body.append("<pre>" + html.escape("\n".join(lines[i + 1 : j])) + "</pre>")
            i = j + 1
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{_inline(line[level:].strip())}</h{level}>")
            i += 1
        elif line.startswith("|"):
            j = i
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            rows = [r for r in lines[i:j] if not re.fullmatch(r"\|(\s*:?-+:?\s*\|)+", r.strip())]
            head, *rest = rows
            table = ["<table>", "<tr>" + "".join(f"<th>{_cell(c)}</th>" for c in _cells(head)) + "</tr>"]
            table += ["<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in _cells(r)) + "</tr>" for r in rest]
            body.append("\n".join(table + ["</table>"]))
            i = j
        elif BULLET.match(line):
            j = i
            while j < len(lines) and BULLET.match(lines[j]):
                j += 1
            body.append(_bullets(lines[i:j]))
            i = j
        elif IMAGE.fullmatch(line.strip()):
            alt, src = IMAGE.fullmatch(line.strip()).groups()
            body.append(_image(alt, src, folder, figures))
            i += 1
        elif line.strip():
            j = i + 1  # the first line always: one starting with `![` that is not a whole image is text
            while (
                j < len(lines) and lines[j].strip() and not lines[j].startswith(("#", "|", "```", "![")) and not BULLET.match(lines[j])
            ):
                j += 1
            body.append("<p>" + _inline(" ".join(x.strip() for x in lines[i:j])) + "</p>")
            i = j
        else:
            i += 1
    head = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>"
    )
    return head + "\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n"


def write_html(markdown: str, folder: Path, title: str, figures: Optional[Iterable[str]] = None) -> Path:
    path = Path(folder) / "report.html"
    atomic_write_text(path, markdown_to_html(markdown, Path(folder), title, figures))
    return path
