"""CPU-scale Table 5: its configs, its statistic, and the sweep on real CIFAR-10 runs."""

import json
import types

import numpy as np
import pytest

from experiments import sweep
from experiments import table5_cpu
from experiments.configs import table5
from experiments.configs import table5_cpu as table5_cpu_config
from mixup_jax import trainer


def test_table5_cpu_configs_are_the_papers_rows_in_the_authors_network():
  for row in table5_cpu.CPU_ROWS:
    config = table5_cpu_config.get_config(row)
    trainer.validate_config(config)
    paper = table5.get_config(f"{row},1e-4")
    assert config.mixup.to_dict() == {**paper.mixup.to_dict(),
                                      **({"knn_k": 8} if table5.uses_knn(row) else {})}
    assert (config.label_smoothing, config.input_noise_sigma) == (
        paper.label_smoothing, paper.input_noise_sigma)
    assert (config.train_size, config.test_size, config.weight_decay) == (2000, 0, 1e-4)
    assert (config.model, config.model_options.blocks) == ("preact_resnet18", 2)
    assert not config.dataset_options.augment
    assert config.schedule_boundaries == (15, 22) and config.eval_from_epoch == 26
  assert set(table5_cpu.CPU_ROWS) <= set(table5.ROWS)


def test_run_order_puts_the_baselines_first_then_whole_rows():
  assert table5_cpu.run_order(["erm", "latent2", "mixup_ac_rp", "ls_0.1"], [0, 1]) == [
      ("erm", 0), ("mixup_ac_rp", 0), ("erm", 1), ("mixup_ac_rp", 1),
      ("latent2", 0), ("latent2", 1), ("ls_0.1", 0), ("ls_0.1", 1)]


def test_median_last_takes_the_epoch_ends_from_the_first_counted_epoch():
  records = [{"step": 10, "test/error": 50.0}, {"step": 15, "test/error": 1.0},
             {"step": 20, "test/error": 30.0}, {"step": 30, "test/error": 10.0},
             {"step": 40, "test/error": 20.0}, {"step": 40, "train/loss": 1.0}]
  assert table5_cpu.median_last(records, steps_per_epoch=10, from_epoch=2) == 20.0
  assert table5_cpu.median_last(records, steps_per_epoch=10, from_epoch=4) == 20.0
  assert table5_cpu.median_last(records, steps_per_epoch=10, from_epoch=1) == 25.0


def test_table5_cpu_smallest_trains_keeps_and_judges_real_runs(tmp_path, data_dir,
                                                              compilation_cache):
  """ERM, mixup, a KNN row and an inputs-only row, two seeds each, on real CIFAR-10."""
  runs_dir, out_dir = tmp_path / "runs", tmp_path / "out"
  rows = ["erm", "mixup_ac_rp", "mixup_ac_knn", "inputs_sc_rp"]
  args = types.SimpleNamespace(rows=rows, seeds=["0", "1"], size="smallest",
                               data_dir=str(data_dir), runs_dir=str(runs_dir),
                               out_dir=str(out_dir), aggregate_only=False)
  stats = sweep.run(table5_cpu.EXPERIMENT, args)
  kept = json.loads((out_dir / "runs" / "mixup_ac_knn_wd1e-4_seed1" / "results.json")
                    .read_text())
  assert kept["config"]["seed"] == 1 and kept["config"]["mixup"]["pairing"] == "knn"
  assert 0 <= kept["train_error"] <= 100
  by_row = {r["row"]: r for r in stats["rows"]}
  assert list(by_row) == rows and by_row["erm"]["seeds"] == [0, 1]
  # The statistic: evaluations from epoch 1 of 2 (4 steps each) are steps 4 and 8.
  records = [json.loads(line) for line in
             (out_dir / "runs" / "erm_wd1e-4_seed0" / "metrics.jsonl").read_text().splitlines()]
  evals = [r["test/error"] for r in records if "test/error" in r and r["step"] % 4 == 0]
  assert [r["step"] for r in records if "test/error" in r] == [4, 6, 8]  # 6: not an epoch end
  assert by_row["erm"]["median_last_test_error"]["per_seed"][0] == pytest.approx(np.median(evals))
  mixup, knn = by_row["mixup_ac_rp"], by_row["mixup_ac_knn"]
  difference = knn["minus_mixup"]
  assert difference["mean"] == pytest.approx(np.mean(np.subtract(
      knn["median_last_test_error"]["per_seed"], mixup["median_last_test_error"]["per_seed"])))
  assert "minus_mixup" not in mixup and mixup["minus_erm"]["seeds"] == [0, 1]
  table = (out_dir / "table.md").read_text()
  # Two steps of a width-4 network fit nothing: the verdict must say so.
  assert "it does NOT fit it" in table and "Not judged: outside the regime." in table
  assert "| mixup_ac_knn | 1e-4 | 2 |" in table and "4.98" in table
  assert (out_dir / "ablation.png").stat().st_size > 0
