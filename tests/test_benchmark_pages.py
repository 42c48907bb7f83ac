"""The benchmark pages (docs/benchmarks/) are what benchmarks/readme.py renders from the
results files, and every plot benchmarks/plots.py draws comes from them."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import types

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _module(name: str):
    spec = importlib.util.spec_from_file_location(
        f"benchmarks_{name}", os.path.join(ROOT, "benchmarks", f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_benchmark_pages_agree_with_the_results():
    diff = _module("readme").check()
    assert diff == "", "a benchmark page differs from benchmarks/results; run python " \
        "benchmarks/readme.py\n" + diff


def test_renderer_puts_a_results_figure_and_its_machine_into_the_text(tmp_path):
    readme = _module("readme")
    meta = {"benchmark": "throughput", "date": "2030-01-02T03:04:05+00:00", "commit": "abc1234",
            "machine": {"cpu": "Test CPU 9000", "cores": 7, "load_average_start": [0.5, 0, 0],
                        "load_average_end": [1.25, 0, 0]},
            "python": "3.10.1", "versions": {"numpy": "1.2.3"}, "argv": ["--n", "1000"]}
    results = {"n": 1000, "device": "d", "rows": {
        "lookup": {"z_per_s": 1_234_567.0, "seconds": 1.0},
        "linear": {"z_per_s": 3_456_789.0, "seconds": 1.0},
        "tree_z": {"z_per_s": 43_210.0, "seconds": 1.0}}}
    (tmp_path / "throughput.json").write_text(json.dumps({"meta": meta, "results": results}))
    # an old-format file (no meta) still renders, and says so
    (tmp_path / "layer_sum.json").write_text(json.dumps([{
        "backend": "nnabla", "device": "nnabla on cpu", "networks": 4, "true_ms_min": 1.0,
        "true_ms_max": 2.0, "ratio_mean": 0.987, "ratio_std": 0.01, "kendall_tau": 0.5}]))
    text = readme.render("predictors.md", str(tmp_path))
    flat = " ".join(text.split())  # prose is wrapped
    assert "1.2-3.5 million z/s" in flat
    assert "tree_z about 43,000 z/s" in flat
    assert "Test CPU 9000 (7 cores" in flat and "commit abc1234" in flat
    assert "numpy 1.2.3" in flat
    assert "nnabla 0.99 +- 0.01" in flat
    assert "layer_sum.json`: measured before results recorded their machine" in flat
    assert "**accuracy**: not measured yet" in flat
    assert "![Predictions per second, per predictor kind](img/throughput.svg)" in text

    pages = tmp_path / "pages"
    pages.mkdir()
    for page in readme.PAGES:
        (pages / page).write_text(f"# x\n\n{readme.BEGIN}\nstale 9.9\n{readme.END}\n")
    assert "stale 9.9" in readme.check(str(pages), str(tmp_path))
    for page in readme.PAGES:
        path = pages / page
        path.write_text(readme.rewrite(path.read_text(), readme.render(page, str(tmp_path))))
    assert readme.check(str(pages), str(tmp_path)) == ""


def test_a_benchmark_on_no_page_shows_on_the_overview(tmp_path):
    readme = _module("readme")
    placed = {name for sections in readme.PAGES.values() for name in sections}
    assert set(readme.SECTIONS) <= placed, "give each benchmark a page in PAGES"
    readme.PAGES = {**readme.PAGES, "predictors.md": ("accuracy",)}
    assert "**throughput**: not measured yet" in readme.render("index.md", str(tmp_path))


def test_a_full_run_is_preferred_to_a_smoke_run_only_when_it_records_its_machine(tmp_path):
    readme = _module("readme")
    (tmp_path / "few_shot.json").write_text("[]")
    (tmp_path / "few_shot-quick.json").write_text("[]")
    assert readme.load(str(tmp_path), "few_shot").file == "few_shot-quick.json"
    (tmp_path / "few_shot.json").write_text(json.dumps({"meta": {}, "results": []}))
    chosen = readme.load(str(tmp_path), "few_shot")
    assert chosen.file == "few_shot.json" and not chosen.smoke


def test_every_plot_draws_from_the_results_files():
    readme, plots = _module("readme"), _module("plots")
    for name, (_, draw) in plots.PLOTS.items():
        results = readme.load_each(readme.RESULTS, "simulated") if name == "simulated" else \
            readme.load(readme.RESULTS, name)
        assert results, f"no results for the plot {name}"
        svg = plots.svg(draw(results))
        assert svg.startswith("<?xml") and "<svg" in svg and len(svg) > 5000, name


def test_a_result_not_measured_draws_no_bar_and_says_so():
    """Never a bar of 0 for a missing result: no bar (NaN) and "not measured" in its place."""
    plots = _module("plots")
    rows = [{"train": "designed", "n": 10, "backend": backend, "space": "nb201",
             "predictor": kind, "spearman_rho": 0.9}
            for backend, kind in (("nnabla", "lookup"), ("nnabla", "linear"), ("torch", "lookup"))]
    ax = plots.few_shot(types.SimpleNamespace(results=rows)).axes[0]
    heights = [bar.get_height() for bar in ax.patches]
    assert len(heights) == 4 and sum(math.isnan(h) for h in heights) == 1 and 0 not in heights
    assert [t.get_text() for t in ax.texts] == ["not measured"]
    devices = [{"device": device, "predictor": kind, "spearman_rho": 0.8}
               for device, kind in (("pixel3", "lookup"), ("pixel3", "tree"), ("edgegpu", "tree"))]
    ax = plots.devices(types.SimpleNamespace(results=devices)).axes[0]
    widths = [bar.get_width() for bar in ax.patches]
    assert sum(math.isnan(w) for w in widths) == 1 and 0 not in widths
    assert [t.get_text() for t in ax.texts] == ["not measured"]
