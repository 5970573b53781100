"""Specification of benchmarks/quality_table.py: scores of finished runs, placed at minutes alone."""
import importlib.util
import json
import os

import pytest

_PATH = os.path.join(os.path.dirname(__file__), "..", "..", "benchmarks", "quality_table.py")
_spec = importlib.util.spec_from_file_location("quality_table", _PATH)
quality_table = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(quality_table)


def _run_dir(tmp_path, final):
    run = tmp_path / "cgan_fashion"
    run.mkdir()
    records = [{"epoch": 1, "step": 928, "seconds": 70.0, "d_loss": 1.0},
               {"step": 3000, "elapsed_seconds": 900.0, "generated_images": 10000, "fid": 0.5, "kid": 0.002,
                "class_accuracy": 0.9, "class_accuracy_real": 0.863}]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    (run / "eval.json").write_text(json.dumps(final))
    return str(run)


def test_one_row_per_evaluation_during_training_and_one_for_eval_json(tmp_path):
    run = _run_dir(tmp_path, {"step": 6000, "generated_images": 10000, "fid": 0.25, "kid": 0.001,
                              "precision": 0.7, "recall": 0.4, "class_accuracy": 0.95,
                              "class_accuracy_real": 0.863})
    during, final = quality_table.rows(run, ms_per_step=80)
    # Minutes come from the step and the quiet step time, not from the shared machine's clock.
    assert during == "| cgan_fashion | 3000 | 4.0 | 10000 | 0.50 | 0.0020 | — | — | 0.900 (0.863) | — | during training |"
    assert final == "| cgan_fashion | 6000 | 8.0 | 10000 | 0.25 | 0.0010 | 0.700 | 0.400 | 0.950 (0.863) | — | eval.json |"


def test_the_vae_row_carries_its_test_negative_elbo(tmp_path):
    run = _run_dir(tmp_path, {"step": 6000, "generated_images": 10000, "fid": 3.0, "kid": 0.02,
                              "test_negative_elbo_nats": 331.64})
    assert quality_table.rows(run, ms_per_step=40)[-1].split(" | ")[-2] == "331.6"


def test_a_run_without_eval_json_is_refused_in_one_line(tmp_path):
    with pytest.raises(SystemExit, match="RUN_DIR:MS_PER_STEP"):
        quality_table.main(["quality_table.py", f"{tmp_path}:80"])


def test_a_run_train_py_scored_without_fid_is_sent_to_zoo_evaluate(tmp_path, capsys):
    # The VAE's end of training writes eval.json with its test likelihood only.
    run = _run_dir(tmp_path, {"step": 6000, "test_negative_elbo_nats": 331.6})
    with pytest.raises(SystemExit, match="has no FID: score the run with `python -m zoo.evaluate"):
        quality_table.main(["quality_table.py", f"{run}:40"])
    assert capsys.readouterr().out == ""  # no half table


def test_a_step_time_that_is_not_a_number_is_one_line(tmp_path):
    with pytest.raises(SystemExit, match="expected RUN_DIR:MS_PER_STEP, got"):
        quality_table.main(["quality_table.py", f"{tmp_path}:fast"])
