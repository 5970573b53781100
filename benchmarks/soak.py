"""Soak test of crash safety (not in CI): SIGKILL training at random moments, resume, count what broke.

    python benchmarks/soak.py --kills=20                 # the default model and dataset (DCGAN on shapes)
    python benchmarks/soak.py --kills=20 --small         # narrow networks, for a few minutes on a busy CPU

Each round starts `train.py` with the same command, waits until it trains, lets it run a random
time, SIGKILLs it, then checks every checkpoint the run directory holds (each tensor read back and
its checksum verified) and that metrics.jsonl parses. The next round resumes. A last round is
stopped by SIGTERM, which must save and exit 75. Reports kills survived (the rerun resumed at the
newest checkpoint), corrupt checkpoints (goal 0), steps lost per kill (the step the killed process
had reached minus the step resumed from; goal at most one checkpoint interval) and whether the
final weights are finite.

The step a process reached is read from a file the harness's own wrapper writes after each
execution of --steps_per_execution steps (the training code is not changed for it): the steps
of the execution a kill interrupts, at most steps_per_execution - 1 more, are not counted.
"""
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time

import numpy as np
from absl import app, flags

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAGS = flags.FLAGS
flags.DEFINE_integer("kills", 20, "SIGKILLs before the run may finish.")
flags.DEFINE_boolean("small", False, "base_filters=8, latent_dim=16, batch 16, 20-step epochs: rounds of seconds.")
flags.DEFINE_string("checkpoint_every", "10", "The runs' --checkpoint_every (steps, so losses compare with it).")
flags.DEFINE_float("max_delay", 10.0, "A kill comes uniformly within this many seconds after training starts.")
flags.DEFINE_integer("seed", 0, "Seed of the kill times.")
flags.DEFINE_string("workdir", None, "Run directory (default: a temporary one, removed afterwards).")

# train.py's main, with the Checkpoint callback patched to also record the step reached after each step.
WRAPPER = textwrap.dedent("""
    import os, sys
    from absl import app
    import train
    from zoo import callbacks

    after_step = callbacks.Checkpoint.on_train_batch_end
    def on_train_batch_end(self, batch, logs=None):
        after_step(self, batch, logs)
        with open(os.environ["SOAK_STEP_FILE"], "w") as f:
            f.write(str(int(self.model.step)))
    callbacks.Checkpoint.on_train_batch_end = on_train_batch_end
    app.run(train.main, argv=["train.py", *sys.argv[1:]])
""")


def read_step(path):
    try:
        with open(path) as f:
            return int(f.read() or -1)
    except (FileNotFoundError, ValueError):
        return -1


def audit(workdir):
    """(checkpoint steps, corrupt checkpoint names, metrics lines that do not parse)."""
    import tensorflow as tf
    from zoo import checkpoints
    directory = os.path.join(workdir, "checkpoints")
    state = tf.train.get_checkpoint_state(directory)
    paths = [os.path.join(directory, p) for p in state.all_model_checkpoint_paths] if state else []
    corrupt = [os.path.basename(p) for p in paths if checkpoints.damage(p)]
    torn = 0
    metrics = os.path.join(workdir, "metrics.jsonl")
    if os.path.exists(metrics):
        with open(metrics) as f:
            for line in f:
                try:
                    json.loads(line)
                except json.JSONDecodeError:
                    torn += 1
    return [int(p.rsplit("-", 1)[1]) for p in paths], corrupt, torn


def resumed_step(stderr):
    """The step train.py said it resumed at, 0 for a fresh start."""
    match = re.search(r"Resuming \S+ at epoch \d+, step (\d+)", stderr)
    return int(match[1]) if match else 0


def main(argv):
    del argv
    rng = random.Random(FLAGS.seed)
    workdir = FLAGS.workdir or tempfile.mkdtemp(prefix="zoo-soak-")
    step_file = os.path.join(tempfile.mkdtemp(prefix="zoo-soak-step-"), "step")
    size = ["--base_filters=8", "--latent_dim=16", "--batch_size=16", "--steps_per_epoch=20"] if FLAGS.small else []
    command = [sys.executable, "-c", WRAPPER, f"--workdir={workdir}", f"--checkpoint_every={FLAGS.checkpoint_every}",
               "--epochs=100000", *size]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "SOAK_STEP_FILE": step_file}
    print(f"soak: {FLAGS.kills} SIGKILLs then a SIGTERM; train.py {' '.join(command[3:])}", flush=True)
    survived, corrupt_total, torn_total, lost, newest = 0, 0, 0, [], 0
    for round_number in range(1, FLAGS.kills + 2):
        last = round_number == FLAGS.kills + 1
        if os.path.exists(step_file):
            os.remove(step_file)
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                   text=True)
        while process.poll() is None and read_step(step_file) < 0:
            time.sleep(0.05)
        time.sleep(rng.uniform(0, FLAGS.max_delay))
        process.send_signal(signal.SIGTERM if last else signal.SIGKILL)
        _, stderr = process.communicate()
        if process.returncode not in (-signal.SIGKILL, 75):
            sys.exit(f"round {round_number}: train.py exited with {process.returncode}:\n{stderr[-3000:]}")
        start = resumed_step(stderr)
        if round_number > 1:
            survived += start == newest
            if start != newest:
                print(f"round {round_number}: did NOT resume at the newest checkpoint {newest}, but at {start}")
        reached = read_step(step_file)
        steps, corrupt, torn = audit(workdir)
        corrupt_total, torn_total, newest = corrupt_total + len(corrupt), torn_total + torn, max(steps, default=0)
        if last:
            print(f"SIGTERM: exit {process.returncode} at step {reached}, newest checkpoint {newest}", flush=True)
            break
        lost.append(reached - newest)
        print(f"kill {round_number:2d}: resumed at {start}, killed at step {reached}, newest checkpoint {newest} "
              f"({reached - newest} steps lost), corrupt: {', '.join(corrupt) or 'none'}, torn metrics lines: {torn}",
              flush=True)
    import tensorflow as tf
    reader = tf.train.load_checkpoint(os.path.join(workdir, "checkpoints"))
    dtypes = reader.get_variable_to_dtype_map()
    finite = all(np.isfinite(reader.get_tensor(name)).all() for name in dtypes if dtypes[name].is_floating)
    print(f"kills survived: {survived}/{FLAGS.kills} (the next run resumed at the newest checkpoint)")
    print(f"corrupt checkpoints found: {corrupt_total}; torn metrics lines: {torn_total}")
    print(f"steps lost per kill: max {max(lost)}, mean {np.mean(lost):.1f} (interval: {FLAGS.checkpoint_every}; "
          f"plus each kill's unfinished execution)")
    print(f"final weights finite: {finite}")
    if not FLAGS.workdir:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    app.run(main)
