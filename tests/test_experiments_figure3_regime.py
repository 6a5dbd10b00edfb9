"""The memorisation-regime Figure 3 entry: its balanced subset, configs, and a real sweep."""

import json
import types

import numpy as np
import pytest

from experiments import figure3_regime
from experiments import sweep
from experiments.configs import figure3_regime as regime_config
from mixup_jax import data as data_lib
from mixup_jax import trainer


def test_balanced_subset_takes_the_first_examples_of_each_class_in_split_order():
  labels = np.array([0, 0, 1, 0, 2, 1, 2, 2, 1, 0])
  source = data_lib.pipeline.ArraySource({"label": labels, "index": np.arange(10)})
  subset = data_lib.pipeline.balanced(source, 6)
  np.testing.assert_array_equal(subset.arrays["index"], [0, 1, 2, 4, 5, 6])
  np.testing.assert_array_equal(np.bincount(subset.arrays["label"]), [2, 2, 2])

  class Lazy:  # a source that is not in memory goes through the same indices
    def __len__(self):
      return len(labels)

    def __getitem__(self, i):
      return {"label": labels[i], "index": i}

  view = data_lib.pipeline.balanced(Lazy(), 6)
  assert [view[i]["index"] for i in range(len(view))] == [0, 1, 2, 4, 5, 6]
  with pytest.raises(ValueError, match="multiple of the 3 classes"):
    data_lib.pipeline.balanced(source, 5)
  with pytest.raises(ValueError, match="needs 4 records of every class"):
    data_lib.pipeline.balanced(source, 12)


def test_balanced_cifar10_subset_through_the_config(data_dir):
  config = regime_config.get_config("erm,1000")
  config.data_dir = str(data_dir)
  config.train_size = 200  # the committed sample has about 50 images of each class
  train = trainer.build_dataset(config).train
  assert len(train) == 200
  np.testing.assert_array_equal(np.bincount(train.arrays["label"]), [20] * 10)
  config.train_subset = "random"
  with pytest.raises(trainer.ConfigError, match="train_subset: must be one of"):
    trainer.validate_config(config)


def test_regime_configs_keep_the_updates_and_scale_the_schedule():
  for method in regime_config.METHODS:
    for size in (1000, 2000, 5000, 10000):
      config = regime_config.get_config(f"{method},{size}")
      trainer.validate_config(config)
      steps_per_epoch = size // config.batch_size
      first, second = (b * steps_per_epoch for b in config.schedule_boundaries)
      assert config.num_train_steps == 7800
      assert abs(first - 3900) < steps_per_epoch and abs(second - 5850) < steps_per_epoch
      assert dict(config.model_options) == {"width": 16, "blocks": 2}
  assert regime_config.get_config("erm").train_size == 5000
  with pytest.raises(ValueError, match="multiple of 10"):
    regime_config.get_config("erm,1005")


def test_run_plan_asks_the_papers_question_first():
  plan = figure3_regime.run_plan(["erm", "mixup", "cutmix"], [0, 1], [1000], [0])
  assert plan[:4] == [("erm", 5000, 0), ("mixup", 5000, 0), ("erm", 5000, 1), ("mixup", 5000, 1)]
  assert plan[-2:] == [("erm", 1000, 0), ("mixup", 1000, 0)]


def test_regime_smallest_sweep_trains_keeps_and_aggregates(tmp_path, data_dir, compilation_cache):
  out_dir = tmp_path / "out"
  args = types.SimpleNamespace(methods=["erm", "mixup"], seeds=["0", "1"], curve_sizes=[],
                               curve_seeds=[], size="smallest", data_dir=str(data_dir),
                               runs_dir=str(tmp_path / "runs"), out_dir=str(out_dir),
                               aggregate_only=False)
  stats = sweep.run(figure3_regime.EXPERIMENT, args)
  erm = stats["methods"]["erm_n200"]
  assert erm["seeds"] == [0, 1] and len(erm["last_train_error"]["per_seed"]) == 2
  difference = stats["differences"]["mixup_n200"]["final_test_error"]
  mixup = stats["methods"]["mixup_n200"]["final_test_error"]["per_seed"]
  assert difference["mean"] == pytest.approx(
      np.mean(np.subtract(mixup, erm["final_test_error"]["per_seed"])))
  table = (out_dir / "table.md").read_text()
  assert "Regime check (ERM)" in table and "| mixup | 200 | 2 |" in table
  assert (out_dir / "curves.png").stat().st_size > 0 and (out_dir / "data_size.png").exists()
  kept = json.loads((out_dir / "runs" / "mixup_n200_seed1" / "results.json").read_text())
  assert kept["config"]["train_subset"] == "balanced"
