r"""Short real-data training runs, one per mixing method, and their recorded outcomes.

Each case is the CLI's run (`experiments.main` calls `trainer.train_and_evaluate` on
the config it parsed) of the smoke config shrunk to 6 steps of a width-4 small CNN
(a width-4, 1-block PreAct ResNet-18 for latent mixing) on the committed CIFAR-10 sample. Its final train state (a SHA-256 of
every leaf's bytes) and metrics were recorded before the mixing code was refactored,
so a change that moves any draw or any rounding shows up. Record again only for a
change that is meant to change results, and say so in the commit:

  python -m tests.helpers.mixing_regression --record

XLA may round differently on another CPU or jaxlib, so the fixture keeps one recording
per platform (the code they were made with was bitwise identical on the first): the
bits are compared where a recording's platform matches, and elsewhere the draws
(lambda) exactly and the losses to 5e-3. Rounding moves the losses by up to 6e-4
between an AMD EPYC and an Intel Xeon (the k-way 'closest' targets flip on near-ties;
every other case by under 3e-7); a moved draw changes lambda and the losses by far more.
Recording on a new platform adds its recording and keeps the others.
"""

from __future__ import annotations

import hashlib
import json
import pathlib
import platform
import sys
import tempfile
from typing import Any

FIXTURE = pathlib.Path(__file__).with_suffix(".json")

# Config overrides of each case on top of `base_config`.
CASES: dict[str, dict[str, Any]] = {
    "erm": {"mixup.alpha": 0.0},
    "mixup": {"mixup.alpha": 1.0},
    "cutmix": {"mixup.alpha": 0.0, "mixup.cutmix_alpha": 1.0},
    "switch": {"mixup.alpha": 0.8, "mixup.cutmix_alpha": 1.0, "mixup.switch_prob": 0.5},
    "latent": {"mixup.alpha": 2.0, "mixup.stages": (1, 3), "model": "preact_resnet18",
               "model_options.width": 4, "model_options.blocks": 1},
    "knn": {"mixup.alpha": 1.0, "mixup.pairing": "knn", "mixup.knn_k": 5},
    # The ablation options, per example, in one run.
    "same_class_kway_closest": {"mixup.alpha": 1.0, "mixup.pairing": "same_class",
                                "mixup.num_sources": 3, "mixup.targets": "closest",
                                "mixup.granularity": "example", "mixup.prob": 0.8,
                                "label_smoothing": 0.1},
    # The per-device paths: one lambda per device, partners from the global batch,
    # ERM for the first epoch.
    "pmap_device_global_warmup": {"mixup.alpha": 1.0, "mixup.granularity": "device",
                                  "mixup.global_pairing": True, "mixup.start_epoch": 1,
                                  "parallel": "pmap", "model_options.axis_name": "batch"},
}


def base_config(data_dir: str):
  """The smoke config at test size: 6 steps of batch 16 on the CIFAR-10 sample."""
  import ml_collections  # pylint: disable=import-outside-toplevel
  from experiments.configs import smoke  # pylint: disable=import-outside-toplevel

  config = smoke.get_config()
  config.data_dir = data_dir
  config.model_options = ml_collections.ConfigDict({"width": 4})  # cifar_small_cnn
  config.train_size = 64  # 4 steps an epoch: mixup.start_epoch=1 warms up for 4
  config.test_size = 96
  config.batch_size = 16
  config.eval_batch_size = 96
  config.num_train_steps = 6
  config.log_every_steps = 3
  config.eval_every_steps = 6
  config.checkpoint_every_steps = 6
  config.learning_rate = 0.1
  config.momentum = 0.9
  config.weight_decay = 1e-4
  return config


def config_for(case: str, data_dir: str):
  config = base_config(data_dir)
  for key, value in CASES[case].items():
    node, name = config, key
    while "." in name:
      head, name = name.split(".", 1)
      node = node[head]
    node[name] = value
  return config


def _digest(tree) -> str:
  """SHA-256 over every leaf's path, dtype, shape and bytes."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel

  hasher = hashlib.sha256()
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    value = np.asarray(leaf)
    hasher.update(f"{jax.tree_util.keystr(path)}|{value.dtype}|{value.shape}|".encode())
    hasher.update(np.ascontiguousarray(value).tobytes())
  return hasher.hexdigest()


def run_case(case: str, data_dir: str) -> dict[str, Any]:
  """The outcome of one case: state digests, final metrics, per-step train loss."""
  import jax  # pylint: disable=import-outside-toplevel
  from mixup_jax import trainer  # pylint: disable=import-outside-toplevel

  config = config_for(case, data_dir)
  final = {}

  def keep_last(step, state):
    if step == config.num_train_steps:
      # Under pmap every leaf has a device axis; the replicas are equal, keep one.
      if config.parallel == "pmap":
        state = jax.tree.map(lambda leaf: leaf[0], state)
      final["state"] = jax.device_get(state)

  with tempfile.TemporaryDirectory() as workdir:
    results = trainer.train_and_evaluate(config, workdir, hooks=(keep_last,))
    lines = (pathlib.Path(workdir) / "metrics.jsonl").read_text().splitlines()
  records = [json.loads(line) for line in lines]
  state = final["state"]
  return {
      "params": _digest(state.params),
      "batch_stats": _digest(state.batch_stats),
      "opt_state": _digest(state.opt_state),
      "final_test_error": results["final_test_error"],
      "test_loss": [r["test/loss"] for r in records if "test/loss" in r][-1],
      "train_loss": [r["train/loss"] for r in records if "train/loss" in r],
      "train_lambda": [r["train/lambda"] for r in records if "train/lambda" in r],
  }


def platform_id() -> str:
  """What XLA's rounding may depend on: the CPU model and the jax / jaxlib versions."""
  import jax  # pylint: disable=import-outside-toplevel
  import jaxlib  # pylint: disable=import-outside-toplevel

  model = platform.processor() or platform.machine()
  try:
    for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
      if line.startswith("model name"):
        model = line.split(":", 1)[1].strip()
        break
  except OSError:
    pass
  return f"{model} | jax {jax.__version__} | jaxlib {jaxlib.__version__}"


def recordings() -> list[dict[str, Any]]:
  """The fixture's recordings, one per platform: [{'platform', 'cases'}]."""
  return json.loads(FIXTURE.read_text())["recordings"] if FIXTURE.exists() else []


def record(data_dir: str) -> None:
  outcomes = {case: run_case(case, data_dir) for case in CASES}
  kept = [r for r in recordings() if r["platform"] != platform_id()]
  fixture = {"recordings": kept + [{"platform": platform_id(), "cases": outcomes}]}
  FIXTURE.write_text(json.dumps(fixture, indent=1, sort_keys=True) + "\n")
  print(f"wrote {FIXTURE} ({len(outcomes)} cases on {platform_id()}, "
        f"{len(kept)} other platform(s) kept)")


if __name__ == "__main__":
  if sys.argv[1:] != ["--record"]:
    sys.exit("usage: python -m tests.helpers.mixing_regression --record")
  # The tests' setup: 8 CPU devices and the committed samples.
  sys.path.insert(0, str(FIXTURE.parents[1]))  # tests/
  import conftest  # noqa: F401  pylint: disable=import-error,unused-import,wrong-import-position

  record(str(conftest.TEST_DATA_DIR))
