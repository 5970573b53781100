"""zoo.benchmark's report: its structure and that every figure is a positive number (no timing assertions)."""
import json
import re
import subprocess
import sys

import numpy as np
import pytest

from zoo import benchmark

QUICK = ["--models=vae", "--precisions=float32", "--xla=false", "--windows=1", "--window_steps=1", "--warmup=0",
         "--batch_size=8", "--base_filters=4", "--pipeline_datasets=celeb_a", "--folder_images=16",
         "--nomemory"]  # memory: test_peak_memory_is_measured_for_a_setting


@pytest.fixture(scope="module")
def report(run_script, tmp_path_factory):
    output = tmp_path_factory.mktemp("docs") / "benchmarks.md"
    output.write_text("prose before\n<!-- benchmark:begin -->\nold\n<!-- benchmark:end -->\nprose after\n")
    result = run_script("-m", "zoo.benchmark", *QUICK, f"--output={output}")
    assert result.returncode == 0, result.stderr[-3000:]
    return output.read_text()


def _rows(text, first_header):
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return lines[start], rows


def _number(cell):
    return float(re.match(r"[\d.]+", cell).group())


def test_the_report_replaces_only_the_benchmark_section(report):
    assert report.startswith("prose before\n<!-- benchmark:begin -->\n") and report.endswith(
        "<!-- benchmark:end -->\nprose after\n")
    assert "\nold\n" not in report


def test_the_header_names_device_tensorflow_cores_and_batch(report):
    assert re.search(r"on .+ \(\d+ cores, (no GPU|GPU)\), TensorFlow 2\.\d+\.\d+, Keras 3\.\d+\.\d+, batch 8,", report)
    assert re.search(r"matmul runs at [\d.]+ GFLOP/s", report)
    assert re.search(r"vae: [\d.]+ MFLOP per image .* zoo default / reference = \*\*[\d.]+x\*\*", report)


def test_training_rows_have_positive_speed_and_flops_share_for_reference_default_and_each_setting(report):
    header, rows = _rows(report, "model")
    assert header == ("| model | setting | ms/step | images/s | x reference | share of matmul FLOP/s | "
                      "peak RSS MB |")
    assert [row[1].split(" (")[0] for row in rows] == ["reference", "zoo default", "float32"]
    assert rows[0][4] == "1.00"
    for row in rows:
        assert row[0] == "vae" and all(_number(cell) > 0 for cell in row[2:6]) and row[6] == "-"


def test_peak_memory_is_measured_for_a_setting(capsys):
    benchmark.probe(json.dumps(["vae", ["zoo", "float32", False], {"batch_size": 8, "base_filters": 4}]))
    assert float(capsys.readouterr().out.strip().splitlines()[-1]) > 0


def test_a_new_output_file_gets_the_section(tmp_path):
    benchmark.write_into(str(tmp_path / "new.md"), "the table")
    assert (tmp_path / "new.md").read_text() == "<!-- benchmark:begin -->\nthe table\n<!-- benchmark:end -->\n"


def test_an_unwritable_output_is_refused_before_any_timing(run_script, tmp_path):
    (tmp_path / "afile").write_text("")
    result = run_script("-m", "zoo.benchmark", f"--output={tmp_path}/afile/out.md")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1].startswith(f"error: --output={tmp_path}/afile/out.md: ")


def test_a_probe_reports_its_own_peak_memory_not_the_parent_process_s(tmp_path):
    # Linux carries the parent's resident size at fork across execve into a child's ru_maxrss: every
    # probe reported the benchmark process's own 1.9 GB (measured 2026-11-24, all settings alike).
    ballast = np.ones(2 ** 30 // 8)  # 1 GiB resident in this process
    ballast[::512] = 2.0
    code = "from zoo.benchmark import peak_rss_mb; print(peak_rss_mb())"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    child = float(result.stdout.strip().splitlines()[-1])
    assert 0 < child < benchmark.peak_rss_mb() - 512, (child, benchmark.peak_rss_mb())
    del ballast


def test_pipeline_rows_compare_delivery_with_consumption(report):
    header, rows = _rows(report, "dataset")
    assert header == "| dataset | what | images/s | x training's consumption |"
    assert [row[0] for row in rows] == ["celeb_a"]
    assert _number(rows[0][2]) > 0 and re.match(r"[\d.]+x (ok|\*\*starves training\*\*)", rows[0][3])
