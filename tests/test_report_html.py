"""report.html: the verdicts, the report card, the disparate-impact tables and the figures on one
self-contained page (figures embedded byte for byte, nothing fetched from elsewhere)."""

from __future__ import annotations

import base64
import html
import re
import warnings

import numpy as np
import pandas as pd

from prune_cli.report import build_report
from prune_cli.report.html import markdown_to_html
from test_disparate_impact import DENSE, LABELS, PRUNED, _fake_run


def _per_class(run_dir, method, sparsity, seed, dense, final):
    rows = []
    for phase, preds in (("dense", dense), ("finetuned", final)):
        for c in range(4):
            inside = LABELS == c
            rows.append(
                {
                    "run_id": run_dir.name,
                    "seed": seed,
                    "dataset": "synthetic",
                    "model": "mlp",
                    "method": method,
                    "score": method,
                    "allocation": "global",
                    "structure": "unstructured",
                    "schedule": "oneshot",
                    "target_sparsity": sparsity,
                    "phase": phase,
                    "split": "test",
                    "class": c,
                    "support": int(inside.sum()),
                    "recall": float((preds[inside] == c).mean()),
                    "dense_recall": float((dense[inside] == c).mean()),
                }
            )
    pd.DataFrame(rows).to_csv(run_dir / "per_class.csv", index=False)


def test_report_html_is_one_self_contained_page(tmp_path):
    root = tmp_path / "results"
    for seed in range(3):
        for method, final in (("magnitude", PRUNED[seed]), ("random", DENSE[seed])):
            _fake_run(root, f"{method}-{seed}", method, 0.9, seed, DENSE[seed], final)
            _per_class(root / "runs" / f"{method}-{seed}", method, 0.9, seed, DENSE[seed], final)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        written = build_report(root, plots=True)
    page = written["report.html"].read_text()
    assert page.startswith("<!DOCTYPE html>")
    for heading in ("Report card", "Paired comparisons", "Disparate impact", "Evaluation standards", "Plots"):
        assert re.search(f"<h2>{heading}", page), heading
    verdicts = pd.read_csv(written["comparisons.csv"])["verdict"]
    assert len(verdicts) and all(html.escape(v) in page for v in verdicts)
    card = pd.read_csv(written["report_card.csv"])
    assert all(html.escape(r) in page for r in card["recommendation"])
    pngs = [p for name, p in written.items() if name.endswith(".png")]
    assert pngs
    embedded = re.findall(r'src="data:image/png;base64,([^"]+)"', page)
    assert sorted(base64.b64decode(e) for e in embedded) == sorted(p.read_bytes() for p in pngs)
    sources = re.findall(r'(?:src|href)="([^"]*)"', page)
    assert all(s.startswith("data:image/png;base64,") for s in sources)  # nothing fetched, no other file
    assert "<script" not in page and "http://" not in page and "https://" not in page
    pies = pd.read_csv(written["pie_per_class.csv"])
    assert pies[pies["method"] == "magnitude"]["pie_count"].sum() == 4
    assert np.isfinite(pd.read_csv(written["worst_class.csv"])["worst_class_change"]).all()


def test_markdown_tables_lists_code_and_escaping():
    md = "# T\n\nsome `x<y` text\n\n| a | b |\n|---|---|\n| 1 | <2> |\n\n- one\n- two\n\n```\nraw | <line>\n```\n"
    page = markdown_to_html(md, folder=None, title="t")
    assert "<h1>T</h1>" in page and "<code>x&lt;y</code>" in page
    assert "<tr><th>a</th><th>b</th></tr>" in page and "<td>&lt;2&gt;</td>" in page
    assert "<ul><li>one</li><li>two</li></ul>" in page
    assert "<pre>raw | &lt;line&gt;</pre>" in page


def _experiment_rows(tmp_path, cache_dirs) -> list[str]:
    """The <tr> rows of report.html's Experiments table for runs that differ in dataset.cache_dir only
    (`cache_dirs`), after checking its header."""
    from test_report_summary import _with_cache_dirs

    root = tmp_path / "res"
    _with_cache_dirs(root, cache_dirs)
    page = build_report(root, plots=False)["report.html"].read_text()
    table = page.split("<h2>Experiments</h2>", 1)[1].split("</table>", 1)[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table, flags=re.S)
    assert re.findall(r"<th>(.*?)</th>", rows[0]) == ["experiment", "dataset.cache_dir", "n_runs", "seeds"]
    return rows


def test_html_table_cells_keep_pipes_and_line_breaks_in_their_column(tmp_path):
    """A config value with `|` or a newline: report.html shows it in its own column, `|` and the
    line break included, with `<` and `&` escaped; the other columns stay under their headers."""
    from test_report_summary import CACHE_DIRS

    rows = _experiment_rows(tmp_path, CACHE_DIRS)
    cells = sorted(re.findall(r"<td>(.*?)</td>", row, flags=re.S)[1:] for row in rows[1:])
    assert cells == [["/tmp/x/cache|a&lt;b&gt;&amp;c", "2", "0 1"], ["/tmp/y<br>z", "2", "0 1"]]


def test_markdown_table_cells_unescape_pipes():
    md = "| a | b |\n|---|---|\n| x\\|y<br>z | 2 |\n"
    page = markdown_to_html(md, folder=None, title="t")
    assert "<tr><td>x|y<br>z</td><td>2</td></tr>" in page


def test_a_line_that_starts_like_an_image_but_is_not_one_is_a_paragraph():
    """Before: a line starting with `![` that is not a whole image (`![broken`) matched neither the
    image branch nor the paragraph loop (which stops at `![`), so the paragraph was empty and the
    loop never advanced: markdown_to_html never returned. Now such a line is text of its paragraph."""
    page = markdown_to_html("text\n![broken\n\n![alt](missing.png) tail\n![x", folder=None, title="t")
    assert "<p>text</p>" in page
    assert "<p>![broken</p>" in page
    assert "<p>![alt](missing.png) tail</p>" in page and "<p>![x</p>" in page


def test_a_literal_br_or_backticks_in_a_config_value_stay_text_in_report_html(tmp_path):
    """A config value holding `<br>` or backticks: report.html broke the cell at the literal `<br>` (a line
    break the value does not have) and set `c` in code type. Both are now shown as written: the cell's
    text, unescaped by hand here, is the value."""
    values = ["/tmp/a<br>b", "/tmp/`c`"]
    rows = _experiment_rows(tmp_path, values)
    cells = sorted(re.findall(r"<td>(.*?)</td>", row, flags=re.S)[1] for row in rows[1:])
    assert "<br>" not in "".join(cells) and "<code>" not in "".join(cells)
    assert sorted(html.unescape(c) for c in cells) == sorted(values)


def test_indented_bullets_are_a_nested_list():
    """The scaling section's "  - ..." lines under a bullet were rendered as a paragraph "<p>- ...</p>"."""
    page = markdown_to_html("- a\n  - b `x`\n  - c\n- d\n\n  - e\n", folder=None, title="t")
    assert "<ul><li>a<ul><li>b <code>x</code></li><li>c</li></ul></li><li>d</li></ul>" in page
    assert "<ul><li>e</li></ul>" in page and "<p>" not in page
