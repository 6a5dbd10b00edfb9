"""The seed statistics (experiments.summary), the CPU-scale Figure 3 entry and the entries
that read its models (Table 3, Figure 2)."""

import json
import math
import types

import pytest

from experiments import figure2_between
from experiments import figure3_cpu
from experiments import summary
from experiments import sweep
from experiments import table3_figure3
from experiments.configs import figure3_cpu as figure3_config
from mixup_jax import trainer


def test_mean_se_and_t_interval_match_hand_computed_values():
  estimate = summary.mean_se([1.0, 2.0, 4.0])
  assert estimate.mean == pytest.approx(7 / 3)
  # Sample variance ((4/3)^2 + (1/3)^2 + (5/3)^2) / 2 = 7/3; SE = sqrt(7/9).
  assert estimate.se == pytest.approx(math.sqrt(7 / 9))
  assert estimate.half_width == pytest.approx(4.303 * math.sqrt(7 / 9))
  assert summary.t_975(40) == 1.960


def test_paired_difference_cancels_a_shared_seed_effect():
  erm = [10.0, 14.0, 18.0]  # seeds differ by 4 points
  method = [9.0, 13.1, 16.9]  # ~1 point better on every seed
  difference = summary.paired_difference(method, erm)
  assert difference.mean == pytest.approx(-1.0)
  assert difference.se < 0.1 < summary.mean_se(erm).se
  assert summary.verdict(difference) == "reproduced"
  assert summary.verdict(summary.paired_difference(erm, method)) == "contradicted"
  assert summary.verdict(summary.paired_difference([10.0, 14.5, 17.5], erm)) == "inconclusive"
  assert summary.verdict(summary.paired_difference(erm, method), lower_is_better=False) == (
      "reproduced")


def test_summary_rejects_what_has_no_standard_error():
  with pytest.raises(ValueError, match="values needs at least two seeds"):
    summary.mean_se([1.0])
  with pytest.raises(ValueError, match="method and baseline"):
    summary.paired_difference([1.0, 2.0], [1.0])


def test_figure3_configs_are_valid_and_differ_only_in_mixing():
  configs = {m: figure3_config.get_config(m) for m in figure3_config.METHODS}
  for config in configs.values():
    trainer.validate_config(config)
    assert (config.num_epochs, config.schedule, config.batch_size) == (10, "cosine", 128)
    assert dict(config.model_options) == {"width": 16, "blocks": 1}
  mixing = {m: (c.mixup.alpha, c.mixup.cutmix_alpha) for m, c in configs.items()}
  assert mixing == {"erm": (0, 0), "mixup": (1, 0), "cutmix": (0, 1), "switch": (1, 1)}
  with pytest.raises(ValueError, match="METHOD must be one of"):
    figure3_config.get_config("cutout")


def test_run_order_answers_the_papers_question_first():
  assert figure3_cpu.run_order(figure3_config.METHODS, [0, 1]) == [
      ("erm", 0), ("mixup", 0), ("erm", 1), ("mixup", 1),
      ("cutmix", 0), ("switch", 0), ("cutmix", 1), ("switch", 1)]


def test_figure3_smallest_trains_keeps_and_aggregates_real_runs(tmp_path, data_dir,
                                                               compilation_cache):
  """Two methods x two seeds on real CIFAR-10; a second call trains nothing again."""
  runs_dir, out_dir = tmp_path / "runs", tmp_path / "out"
  args = types.SimpleNamespace(methods=["erm", "mixup"], seeds=["0", "1"], size="smallest",
                               data_dir=str(data_dir), runs_dir=str(runs_dir),
                               out_dir=str(out_dir), aggregate_only=False)
  stats = sweep.run(figure3_cpu.EXPERIMENT, args)
  kept = json.loads((out_dir / "runs" / "mixup_seed1" / "results.json").read_text())
  assert kept["config"]["seed"] == 1 and kept["config"]["mixup"]["alpha"] == 1.0
  assert "checkpoint" not in kept  # machine paths stay in the workdir
  erm = stats["methods"]["erm"]["final_test_error"]
  assert erm["n"] == 2 and erm["per_seed"][0] != erm["per_seed"][1]  # seeds differ
  difference = stats["differences"]["mixup"]["final_test_error"]
  mixup = stats["methods"]["mixup"]["final_test_error"]["per_seed"]
  assert difference["mean"] == pytest.approx(
      sum(m - e for m, e in zip(mixup, erm["per_seed"])) / 2)
  table = (out_dir / "table.md").read_text()
  assert "| mixup | 2 |" in table and difference["verdict"] in table
  assert (out_dir / "figure3_cpu.png").stat().st_size > 0

  # Table 3 on these models: white box on each seed, black box from the other seed's ERM.
  attacked = table3_figure3.run([0, 1], runs_dir=runs_dir, out_dir=tmp_path / "table3",
                                data_dir=str(data_dir), attack_size=32, size="smallest")
  assert attacked["per_seed"][0]["black_box_source"] == "erm_seed1"
  white = attacked["summary"]["white_box fgsm eps 8"]
  assert white["erm"]["mean"] >= attacked["summary"]["clean"]["erm"]["mean"]  # attacks hurt
  assert white["mixup_minus_erm"]["verdict"] in ("reproduced", "contradicted", "inconclusive")
  assert "| black_box ifgsm eps 4 |" in (tmp_path / "table3" / "table.md").read_text()

  # Figure 2 on the same models: both curves per seed, paired over the seeds.
  between = figure2_between.run([0, 1], runs_dir=runs_dir, out_dir=tmp_path / "figure2",
                                data_dir=str(data_dir), num_pairs=16, size="smallest")
  for seed in (0, 1):
    for method in ("erm", "mixup"):
      curve = between["per_seed"][seed][method]
      assert len(curve["miss_rate"]) == len(curve["grad_norm"]) == len(figure2_between.LAMBDAS)
      assert all(0.0 <= m <= 100.0 for m in curve["miss_rate"])
      assert all(g > 0.0 for g in curve["grad_norm"])
  first = between["summary"]["miss_rate"][0]
  assert first["mixup_minus_erm"]["mean"] == pytest.approx(
      first["mixup"]["mean"] - first["erm"]["mean"])
  assert "| 0.50 |" in (tmp_path / "figure2" / "table.md").read_text()
  assert (tmp_path / "figure2" / "between.png").stat().st_size > 0

  for workdir in runs_dir.iterdir():  # finished runs are kept: nothing is retrained
    (workdir / "results.json").unlink()
  assert sweep.run(figure3_cpu.EXPERIMENT, args) == stats
  assert not any((w / "results.json").exists() for w in runs_dir.iterdir())


def test_t_quantiles_match_scipy():
  stats = pytest.importorskip("scipy.stats")
  for df in (1, 2, 3, 5, 10, 30):
    assert summary.t_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=6e-4)
