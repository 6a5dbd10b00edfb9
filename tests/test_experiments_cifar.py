"""The CIFAR experiment configs (Figure 3a, Tables 1, 2, 5) and entries (Tables 2, 3, 5,
Figure 2), each entry run end to end on real CIFAR-10 at its smallest setting."""

import json
import pathlib

import jax
import pytest

from experiments import cifar_runs
from experiments import figure2_between
from experiments import table3_adversarial
from experiments import table5_ablation
from experiments.configs import cifar
from experiments.configs import imagenet
from experiments.configs import table2
from experiments.configs import table5
from mixup_jax import trainer


def test_every_cifar_and_imagenet_config_is_valid_and_follows_the_recipe():
  for dataset in cifar.DATASETS:
    for model in cifar.MODELS:
      for method in cifar.METHODS:
        config = cifar.get_config(f"{dataset},{model},{method}")
        trainer.validate_config(config)
        assert config.mixup.alpha == (1.0 if method == "mixup" else 0.0)
        assert (config.num_epochs, config.batch_size, config.weight_decay) == (200, 128, 1e-4)
        assert config.schedule == ("wrn" if model == "wrn28_10" else "cifar")
  for model, epochs in imagenet.PAPER:
    for method in imagenet.METHODS:
      config = imagenet.get_config(f"{model},{epochs},{method}")
      trainer.validate_config(config)
      assert (config.batch_size, config.num_epochs, config.schedule) == (1024, epochs, "imagenet")
  assert imagenet.get_config("resnext101_32x4d,200,mixup").mixup.alpha == 0.4
  assert imagenet.get_config("resnet101,90,mixup").mixup.alpha == 0.2
  for bad in ("cifar10,resnet50,mixup", "cifar10,wrn28_10", "cifar10,wrn28_10,cutmix"):
    with pytest.raises(ValueError, match="config string|MODEL|METHOD"):
      cifar.get_config(bad)
  with pytest.raises(ValueError, match="no 200-epoch"):
    imagenet.get_config("resnext101_64x4d,200,erm")


def test_table2_and_table5_configs_are_the_papers_rows():
  for corruption in table2.CORRUPTIONS:
    for method in table2.METHODS:
      config = table2.get_config(f"{corruption},{method}")
      trainer.validate_config(config)
      assert config.label_corruption == corruption / 100
  config = table2.get_config("80,mixup_dropout")
  assert (config.mixup.alpha, config.model_options.dropout_rate) == (8.0, 0.3)
  knn_reason = table5_ablation.knn_unsupported_reason()
  for row in table5.ROWS:
    for wd in table5.WEIGHT_DECAYS:
      config = table5.get_config(f"{row},{wd}")
      assert config.weight_decay == float(wd) and config.schedule_shift == 1
      if table5.uses_knn(row) and knn_reason:
        assert "mixup.pairing" in knn_reason  # refused loudly, naming the field
        continue
      trainer.validate_config(config)
  latent = table5.get_config("latent3,5e-4")
  assert tuple(latent.mixup.stages) == (3,) and latent.mixup.alpha == 1.0
  smooth = table5.get_config("inputs_ls_0.4,1e-4")
  assert (smooth.mixup.targets, smooth.label_smoothing) == ("closest", 0.4)
  assert table5.get_config("inputs_sc_rp,1e-4").mixup.pairing == "same_class"
  assert table5.get_config("noise_0.2,1e-4").input_noise_sigma == 0.2
  with pytest.raises(ValueError, match="ROW,WEIGHT_DECAY"):
    table5.get_config("latent6,1e-4")


@pytest.fixture(scope="module", autouse=True)
def _classic_threefry():
  """The classic threefry lowering while this module runs, restored after.

  On CPU the default (partitionable) threefry makes XLA spend 12-23 s compiling a
  network's initialisation, longer than its train step; the classic lowering takes
  ~3 s. These tiny runs are mostly compilation, and the entries do not depend on
  which random bits they get, only on their being seeded.
  """
  previous = jax.config.jax_threefry_partitionable
  jax.config.update("jax_threefry_partitionable", False)
  yield
  jax.config.update("jax_threefry_partitionable", previous)


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> pathlib.Path:
  """One work directory for every run of this module, so Figure 2 reuses Table 3's models."""
  return tmp_path_factory.mktemp("runs")


def _outputs(out_dir: pathlib.Path, png: str) -> tuple[dict, str]:
  results = json.loads((out_dir / "results.json").read_text())
  assert 0 < (out_dir / png).stat().st_size < 300_000
  return results, (out_dir / "table.md").read_text()


def test_table3_smallest_attacks_white_and_black_box(runs_dir, tmp_path, data_dir):
  table3_adversarial.run("smallest", runs_dir=runs_dir, out_dir=tmp_path, data_dir=str(data_dir))
  results, table = _outputs(tmp_path, "error_vs_eps.png")
  assert results["attack_size"] == table3_adversarial.ATTACK_SIZE["smallest"]
  for attack in ("fgsm", "ifgsm"):
    white, black = results["white_box"][attack]["4"], results["black_box"][attack]["4"]
    assert set(white) == {"erm", "mixup"} and set(black) == {"erm2", "mixup"}
    for name in ("erm", "mixup"):
      assert 0.0 <= white[name]["top5"] <= white[name]["top1"] <= 100.0
  for name in ("erm", "mixup"):  # 10 steps that increase the loss cannot make it right
    assert results["white_box"]["ifgsm"]["4"][name]["top1"] >= results["clean"][name]["top1"]
  assert "90.7" in table and "I-FGSM" in table


def test_figure2_smallest_reuses_table3_models(runs_dir, tmp_path, data_dir):
  finished = {p: p.stat().st_mtime_ns for p in runs_dir.glob("cifar10_*/results.json")}
  assert len(finished) == 3, "Table 3's test trains the models first"
  figure2_between.run("smallest", runs_dir=runs_dir, out_dir=tmp_path, data_dir=str(data_dir))
  results, table = _outputs(tmp_path, "between.png")
  assert results["num_pairs"] == figure2_between.NUM_PAIRS["smallest"]
  for name in ("erm", "mixup"):
    curve = results["curves"][name]
    assert len(curve["miss_rate"]) == len(curve["grad_norm"]) == len(figure2_between.LAMBDAS)
    assert all(0.0 <= m <= 100.0 for m in curve["miss_rate"])
    assert all(g > 0.0 for g in curve["grad_norm"])
  # The models came from Table 3's finished runs, untouched: nothing was trained again.
  assert {p: p.stat().st_mtime_ns for p in runs_dir.glob("cifar10_*/results.json")} == finished
  assert "mixup miss %" in table


def test_table5_smallest_reports_the_median_of_the_last_evaluations(runs_dir, tmp_path, data_dir):
  table5_ablation.run("smallest", runs_dir=runs_dir, out_dir=tmp_path, data_dir=str(data_dir))
  results, table = _outputs(tmp_path, "ablation.png")
  scale = table5_ablation.SIZES["smallest"]
  for row in table5_ablation.ROWS["smallest"]:
    cell = results["rows"][row]["5e-4"]
    assert cell["evaluations_in_median"] == scale.num_epochs
    assert 0.0 <= cell["median_last_10_epochs_test_error"] <= 100.0
    history = cifar_runs.read_history(next(runs_dir.glob(f"table5_{row}_5e-4_*")))
    steps_per_epoch = scale.steps_per_epoch
    errors = sorted(r["test/error"] for r in history
                    if "test/error" in r and r["step"] % steps_per_epoch == 0)
    assert cell["median_last_10_epochs_test_error"] == pytest.approx((errors[0] + errors[-1]) / 2)
  assert "5.52" in table  # the paper's SC + KNN (mix inputs only) at wd 5e-4
