"""train.py and export.py as a user runs them: --help, and one-line errors for bad input."""
import pytest

PUBLIC_FLAGS = ("model", "dataset", "image_size", "batch_size", "epochs", "steps_per_epoch", "latent_dim",
                "learning_rate", "workdir", "seed", "xla", "precision")


def test_help_documents_every_public_flag(run_script):
    result = run_script("train.py", "--helpshort")  # absl exits 1 after help
    for name in PUBLIC_FLAGS:
        assert f"--{name}:" in result.stdout or f"--[no]{name}:" in result.stdout, name


def test_help_names_each_models_own_defaults(run_script):
    # The VAE trains 20 epochs with Adam 1e-3/0.9 and 32 latents; the help once showed the DCGAN's for all.
    help_text = " ".join(run_script("train.py", "--helpshort").stdout.split())
    assert "Default per model: cgan 5, dcgan 5, vae 20." in help_text
    assert "Default per model: cgan 0.0005, dcgan 0.0005, vae 0.001." in help_text
    assert "Default per model: cgan 100, dcgan 100, vae 32." in help_text
    assert "Default per model: cgan 0.5, dcgan 0.5, vae 0.9." in help_text


@pytest.mark.parametrize("flag, message", [
    ("--model=gpt", "flag --model=gpt: unknown model 'gpt'; known: "),
    ("--dataset=imagenet", "flag --dataset=imagenet: unknown dataset 'imagenet'; known: "),
    ("--precision=half", "flag --precision=half: value should be one of <auto|float32|"),
    ("--image_size=48", "error: image_size must be 32 or 64, got 48"),
])
def test_bad_flags_fail_at_once_with_one_clear_line(flag, message, run_script, tmp_path):
    result = run_script("train.py", flag, f"--workdir={tmp_path}")
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_export_of_a_folder_that_is_not_a_run_is_one_clear_line(run_script, tmp_path):
    result = run_script("export.py", f"--workdir={tmp_path}", f"--export_dir={tmp_path}/exports")
    assert result.returncode != 0
    assert f"error: {tmp_path} is not a run directory" in result.stderr
    assert "Traceback" not in result.stderr
