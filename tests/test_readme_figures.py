"""The README's Performance section is what benchmarks/readme.py renders from the results files."""

from __future__ import annotations

import importlib.util
import json
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _readme_module():
    spec = importlib.util.spec_from_file_location(
        "benchmarks_readme", os.path.join(ROOT, "benchmarks", "readme.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_performance_section_agrees_with_results():
    diff = _readme_module().check()
    assert diff == "", "README differs from benchmarks/results; run python benchmarks/readme.py\n" \
        + diff


def test_renderer_puts_a_results_figure_and_its_machine_into_the_text(tmp_path):
    readme = _readme_module()
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
    text = readme.render(str(tmp_path))
    flat = " ".join(text.split())  # prose is wrapped
    assert "1.2-3.5 million z/s" in flat
    assert "tree_z about 43,000 z/s" in flat
    assert "Test CPU 9000 (7 cores" in flat and "commit abc1234" in flat
    assert "numpy 1.2.3" in flat
    assert "nnabla 0.99 +- 0.01" in flat
    assert "layer_sum.json`: measured before results recorded their machine" in flat
    assert "**accuracy**: not measured yet" in flat

    page = tmp_path / "README.md"
    page.write_text(f"# x\n\n## Performance\n\n{readme.BEGIN}\nstale 9.9\n{readme.END}\n")
    assert "stale 9.9" in readme.check(str(page), str(tmp_path))
    page.write_text(readme.rewrite(page.read_text(), text))
    assert readme.check(str(page), str(tmp_path)) == ""


def test_a_full_run_is_preferred_to_a_smoke_run_only_when_it_records_its_machine(tmp_path):
    readme = _readme_module()
    (tmp_path / "few_shot.json").write_text("[]")
    (tmp_path / "few_shot-quick.json").write_text("[]")
    assert readme.load(str(tmp_path), "few_shot").file == "few_shot-quick.json"
    (tmp_path / "few_shot.json").write_text(json.dumps({"meta": {}, "results": []}))
    chosen = readme.load(str(tmp_path), "few_shot")
    assert chosen.file == "few_shot.json" and not chosen.smoke
