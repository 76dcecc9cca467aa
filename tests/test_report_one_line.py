"""Audit of 2026-12-03 (report): a user value never adds a line to summary.md and report.html embeds only
the report's own figures; a zero spread has no t interval; a --confidence that floating point cannot test
at is refused; every dense reference line of the accuracy figure looks different."""

from __future__ import annotations

import base64
import html
import math
import re

import matplotlib.pyplot as plt
import pandas as pd
import pytest
import yaml
from matplotlib.colors import to_rgba

from prune_cli.report import build_report, main
from prune_cli.report import plots as plotting
from prune_cli.report.html import markdown_to_html
from prune_cli.report.inputs import ReportInputError

SECRET = b"a file that is not the report's: 7f3a9c"


def _folder(root, kind_b: str, zero_spread: bool = False, other: str = "random"):
    """A hand-written results folder: magnitude and random, 3 seeds, at sparsity 0.5, for two values of the
    config key dataset.kind ("plain" and `kind_b`), with the run directories' files prune-run writes."""
    for kind in ("plain", kind_b):
        for method, acc in (("magnitude", 0.8), (other, 0.7)):
            for seed in range(3):
                run_id = f"{'m' if method == 'magnitude' else 'o'}-{'p' if kind == 'plain' else 'b'}-{seed}"
                d = root / "runs" / run_id
                d.mkdir(parents=True)
                cfg = {"name": "t", "seed": seed, "sparsity": 0.5, "method": {"name": method}}
                cfg["dataset"] = {"name": "synthetic", "kind": kind}
                (d / "config.yaml").write_text(yaml.safe_dump(cfg))
                ctx = dict(run_id=run_id, seed=seed, dataset="synthetic", model="mlp", score=method, allocation="global")
                ctx |= dict(structure="unstructured", name="t", method=method, schedule="oneshot", target_sparsity=0.5)
                ctx |= dict(split="test", metric="accuracy")
                # the same -0.1 difference on every seed (zero spread), or a different one
                final = acc + 0.01 * seed + (0.0 if zero_spread or method == "magnitude" else 0.02 * seed * seed)
                pd.DataFrame([{**ctx, "phase": "dense", "value": 0.9}, {**ctx, "phase": "finetuned", "value": final}]).to_csv(
                    d / "metrics.csv", index=False
                )
                (d / "COMPLETE").write_text("")


def _evil(tmp_path) -> tuple[str, str]:
    secret = tmp_path / "secret.txt"
    secret.write_bytes(SECRET)
    return f"c\n![x]({secret})\n# H\n```\n- fake\n", base64.b64encode(SECRET).decode("ascii")


def test_a_config_value_cannot_embed_a_file_in_report_html(tmp_path):
    """The value's line `![x](<file>)` was rendered as a figure: report.html held the file's bytes as base64."""
    kind, encoded = _evil(tmp_path)
    _folder(tmp_path / "r", kind)
    written = build_report(tmp_path / "r", plots=False)
    page = written["report.html"].read_text()
    assert encoded not in page
    assert "<img" not in page  # no plots were drawn: no image at all


def test_report_html_embeds_only_the_reports_own_figures(tmp_path):
    """An image line of markdown_to_html is embedded only when it names one of the report's figures, bare."""
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "accuracy_vs_compression.png").write_bytes(b"PNG of the report")
    (tmp_path / "secret.txt").write_bytes(SECRET)
    (tmp_path / "out" / "notes.png").write_bytes(SECRET)
    markdown = "\n".join(
        [
            "![own](accuracy_vs_compression.png)",
            f"![abs]({tmp_path / 'secret.txt'})",
            "![up](../secret.txt)",
            "![other](notes.png)",
            "![sub](./accuracy_vs_compression.png)",
        ]
    )
    page = markdown_to_html(markdown, tmp_path / "out", "t")
    assert page.count("<img") == 1
    assert base64.b64encode(b"PNG of the report").decode() in page
    assert base64.b64encode(SECRET).decode() not in page


def test_no_user_value_adds_a_line_to_summary_md(tmp_path):
    """A config value with line breaks in a verdict's label, a scaling-law family and the standards check:
    each stays on its line, so it starts no heading, image, list item or code fence."""
    kind, _ = _evil(tmp_path)
    _folder(tmp_path / "r", kind)
    written = build_report(tmp_path / "r", plots=False)
    md = written["summary.md"].read_text()
    assert "fake" in md and "# H" in md  # the value is shown, on one line
    lines = md.splitlines()
    headings = [line for line in lines if line.startswith("#")]
    assert headings[0].startswith("# Report: ") and all(h.startswith("## ") for h in headings[1:]), headings
    assert not [line for line in lines if line.startswith("![") or line.strip() in ("- fake", "# H")]
    assert sum(line.startswith("```") for line in lines) == 2  # the standards check's fence, opened and closed once
    for line in lines:  # the verdict bullets and the scaling law's lines hold the whole value
        if "fake" in line and not line.startswith("|"):
            assert "![x](" in line and "# H" in line, line
    standards = written["standards.txt"].read_text().splitlines()
    assert not [line for line in standards if line.strip() in ("- fake", "# H", "```") or line.startswith("![")]
    page = written["report.html"].read_text()
    assert re.findall(r"<h1>(.*?)</h1>", page) == [f"Report: {tmp_path / 'r'}"]


@pytest.mark.parametrize("method", ["# M", "1. M", "> M", "![M](m.png)", "```M", "~~~M"])
def test_a_value_at_the_start_of_a_bullet_starts_no_block(tmp_path, method):
    """A method's name leads its verdict's bullet: `- # M vs magnitude ...` was a heading inside the item in
    CommonMark. Its mark is escaped in summary.md (`- \\# M vs`) and shown as it is in report.html."""
    _folder(tmp_path / "r", "other", other=method)
    written = build_report(tmp_path / "r", plots=False)
    bullets = [line for line in written["summary.md"].read_text().splitlines() if line.startswith("- ") and " vs magnitude" in line]
    assert len(bullets) == 2
    escaped = "\\" + method if method[0] in "#>!`~" else method.replace(".", "\\.", 1)
    assert all(line.startswith(f"- {escaped} vs magnitude at sparsity 0.5") for line in bullets), bullets
    page = written["report.html"].read_text()
    assert page.count(f"<li>{html.escape(method)} vs magnitude at sparsity 0.5") == 2
    assert "<img" not in page


def test_a_value_starting_with_a_code_span_keeps_it(tmp_path):
    """One backtick starts no markdown block, only a code span: a method named `rnd` leads its bullets as code,
    in summary.md (no backslash) and in report.html (<code>), as before the escaping (review of 2026-12-03)."""
    _folder(tmp_path / "r", "other", other="`rnd` m")
    written = build_report(tmp_path / "r", plots=False)
    bullets = [line for line in written["summary.md"].read_text().splitlines() if line.startswith("- ") and " vs magnitude" in line]
    assert len(bullets) == 2 and all(line.startswith("- `rnd` m vs magnitude") for line in bullets), bullets
    assert written["report.html"].read_text().count("<li><code>rnd</code> m vs magnitude") == 2


def test_zero_spread_has_no_t_interval(tmp_path):
    """The same difference on every seed: no t-test is possible (docs/report.md "zero spread"), and no t
    interval either; it was [mean, mean] in comparisons.csv and `[-10.00, -10.00]` in summary.md."""
    _folder(tmp_path / "r", "other", zero_spread=True)
    written = build_report(tmp_path / "r", plots=False)
    table = pd.read_csv(written["comparisons.csv"])
    assert (table["sd_diff"] == 0).all() and table["t_stat"].isna().all()
    assert table["t_low"].isna().all() and table["t_high"].isna().all()
    assert table["mean_diff"].to_numpy() == pytest.approx([-0.1, -0.1])
    assert table["boot_low"].notna().all()  # the bootstrap interval is still given
    rows = [line.split(" | ") for line in written["summary.md"].read_text().splitlines() if "random - magnitude" in line]
    header = next(line for line in written["summary.md"].read_text().splitlines() if "t 95% (not adjusted)" in line).split(" | ")
    at = header.index("t 95% (not adjusted)")
    assert len(rows) == 2 and all(row[at] == "" for row in rows), rows  # the t column empty (the bootstrap's shown)


@pytest.mark.parametrize("value", ["1e-320", "0.9999999999999999", "5e-17", "6e-17", "1.1e-16"])
def test_a_confidence_floating_point_cannot_test_at_is_refused(tmp_path, capsys, value):
    """1 - 1e-320 is 1.0 (a test at level 1: "random < magnitude" at p = 0.13); 0.9999999999999999 has an
    infinite t quantile ([-inf, +inf]); at 6e-17 and 1.1e-16 (below 2**-53) (1 + c) / 2 is 0.5 and the quantile 0, so
    every t interval was [mean, mean] (review of 2026-12-03). Refused like --confidence 1.5: exit 2, nothing created."""
    _folder(tmp_path / "r", "other")
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(SystemExit) as err:
        main([str(tmp_path / "r"), "--no-plots", "--confidence", value])
    message = capsys.readouterr().err
    assert err.value.code == 2 and "--confidence" in message and f"got {float(value)!r}" in message
    assert "1.2e-16 <= c <= 0.9999999999999998" in message
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before
    with pytest.raises(ReportInputError, match="--confidence"):
        build_report(tmp_path / "r", confidence=float(value), plots=False)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_confidences_just_inside_the_range_still_work(tmp_path):
    """The edges of the allowed range give finite intervals (nothing else is refused)."""
    _folder(tmp_path / "r", "other")
    for c in (1.2e-16, 0.9999999999999998):
        written = build_report(tmp_path / "r", confidence=c, plots=False, out=tmp_path / f"o{c}")
        table = pd.read_csv(written["comparisons.csv"])
        assert all(math.isfinite(v) for v in table["t_low"].tolist() + table["t_high"].tolist())


@pytest.mark.parametrize("n", [2, 4, 8])
def test_every_dense_reference_line_looks_different(tmp_path, monkeypatch, n):
    """n dense configurations (widths) in one panel: all were black and cycled over 3 line styles, so the
    1st and the 4th were the same line. Read from the figure: pairwise distinct (style, colour, marker)."""
    from prune_cli.report.summary import summarise

    rows = [
        {"run_id": f"{method}-{w}-{seed}", "experiment": f"e-{method}-{w}", "seed": seed, "dataset": "toy", "model": "mlp"}
        | {"method": method, "schedule": "oneshot", "target_sparsity": 0.5, "model.widths": f"[{w}]", "phase": "finetuned"}
        | {"split": "test", "metric": "accuracy", "value": 0.5, "dense_value": 0.6 + 0.01 * w}
        for w in range(1, n + 1)
        for method in ("magnitude", "random")
        for seed in range(2)
    ]
    figures = []
    close = plt.close
    monkeypatch.setattr(plotting.plt, "close", lambda fig: (figures.append(fig), close(fig)))
    plotting.accuracy_vs_compression(summarise(pd.DataFrame(rows)), tmp_path)
    (fig,) = figures
    dense = [line for line in fig.axes[0].get_lines() if str(line.get_label()).startswith("dense")]
    assert len(dense) == n
    looks = {(line.get_linestyle(), to_rgba(line.get_color()), str(line.get_marker())) for line in dense}
    assert len(looks) == n, looks
