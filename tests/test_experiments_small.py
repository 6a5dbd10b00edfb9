"""Every experiment entry of Table 4, Figure 1b, Figure 5 and the quick demo, on its
smallest setting, plus the UCI and Speech Commands configs."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments import gan_figure5
from experiments import quickstart
from experiments import toy_figure1b
from experiments import uci_protocols
from experiments import uci_table4
from experiments.configs import speech as speech_config
from experiments.configs import uci as uci_config
from mixup_jax import models
from mixup_jax import trainer


def _read_json(path):
  return json.loads(path.read_text())


def test_uci_table4_small(tmp_path, data_dir):
  results = uci_table4.run(uci_table4.small_settings(), tmp_path, data_dir)
  (row,) = results["datasets"]
  assert row["dataset"] == "iris" and row["num_train"] == 120 and row["num_test"] == 30
  for method in ("erm", "mixup"):
    errors = row[method]["per_seed"]
    assert len(errors) == 2 and all(0 <= e <= 100 for e in errors)
    assert all(abs(e * 30 / 100 - round(e * 30 / 100)) < 1e-3 for e in errors)  # k of 30 wrong
  assert row["chosen_alpha"] == 1.0 and row["paper"] == {"erm": 21.3, "mixup": 17.3}
  assert _read_json(tmp_path / "results.json")["datasets"][0]["dataset"] == "iris"
  assert "| iris | 21.3 | 17.3 |" in (tmp_path / "table.md").read_text()
  assert 0 < (tmp_path / "errors.png").stat().st_size < 300_000


def test_uci_alpha_is_chosen_on_mean_validation_error_ties_to_smaller():
  errors = {0.1: np.array([10.0, 20.0]), 0.4: np.array([12.0, 14.0]), 1.0: np.array([13.0, 13.0])}
  assert uci_table4.choose_alpha(errors) == 0.4
  assert uci_table4.choose_alpha({1.0: np.array([5.0]), 0.2: np.array([5.0])}) == 0.2
  with pytest.raises(ValueError, match="empty"):
    uci_table4.choose_alpha({})


def test_uci_seed_splits_share_sizes_and_keep_validation_inside_training(data_dir):
  splits = uci_table4.load_seed_splits("iris", [0, 1], 0.2, data_dir)
  assert splits.train[0].shape == (2, 120, 4) and splits.test[0].shape == (2, 30, 4)
  assert splits.fit[0].shape == (2, 96, 4) and splits.validation[0].shape == (2, 24, 4)
  assert not np.array_equal(splits.test[0][0], splits.test[0][1])  # seed changes the split
  for s in range(2):  # validation rows are training rows, never test rows
    train_rows = {tuple(r) for r in splits.train[0][s]}
    assert all(tuple(r) in train_rows for r in splits.validation[0][s])


def test_toy_figure1b_small(tmp_path):
  results = toy_figure1b.run(toy_figure1b.small_settings(), tmp_path)
  for method in ("erm", "mixup"):
    (run,) = results["runs"][method]
    assert 0 <= run["test_error"] <= 100 and run["band_width"] >= 0
    assert len(run["radial_profile"]["p_class1"]) == 61
  assert "band" in (tmp_path / "table.md").read_text()
  assert 0 < (tmp_path / "probability.png").stat().st_size < 300_000


def test_toy_smoothness_of_the_linear_ramp():
  """p(y=1) = |x| - 1 between the rings: band width 0.8, slope 1, on the ramp."""
  ramp = lambda x: jnp.clip(jnp.linalg.norm(x, axis=1) - 1.0, 0.0, 1.0)
  numbers = toy_figure1b.smoothness(ramp, 201)
  np.testing.assert_allclose(numbers["band_width"], 0.8, atol=0.02)
  np.testing.assert_allclose(numbers["max_slope_between_classes"], 1.0, atol=1e-4)
  assert numbers["max_distance_from_linear_ramp"] < 1e-5
  logistic = lambda x: jax.nn.sigmoid(50 * (jnp.linalg.norm(x, axis=1) - 1.5))
  sharp = toy_figure1b.smoothness(logistic, 201)
  np.testing.assert_allclose(sharp["band_width"], 2 * np.log(9) / 50, atol=0.02)  # 0.1 -> 0.9
  np.testing.assert_allclose(sharp["max_slope_between_classes"], 50 / 4, rtol=0.05)


def test_gan_figure5_small(tmp_path):
  settings = gan_figure5.SIZES["smallest"]
  results = gan_figure5.run(settings, tmp_path, size="smallest")
  entry = results["targets"]["ring8"]
  for method in ("erm", "mixup"):
    snaps = entry[method]["snapshots"]
    assert [s["iteration"] for s in snaps] == list(settings.snapshots)
    final = snaps[-1]
    assert 0 <= final["modes_covered"][0] <= 8 and 0 <= final["high_quality_fraction"][0] <= 1
    assert np.isfinite(final["last_chunk_metrics"]["discriminator_loss"][0])
  assert entry["erm"]["snapshots"][-1]["last_chunk_metrics"]["lambda"] == [1.0]
  assert 0 < entry["mixup"]["snapshots"][-1]["last_chunk_metrics"]["lambda"][0] < 1
  assert "ring8 (8 modes)" in (tmp_path / "table.md").read_text()
  assert 0 < (tmp_path / "ring8.png").stat().st_size < 300_000


def test_gan_figure5_resumes_a_stopped_run_exactly(tmp_path, monkeypatch):
  settings = gan_figure5.SIZES["smallest"]  # 30 updates: saved at 10 (snapshot), 20, 30
  uninterrupted = gan_figure5.run(settings, None, size="smallest")
  save = gan_figure5._Workdir.save  # pylint: disable=protected-access

  def save_then_die_at_20(self, states, done, *args, **kwargs):
    save(self, states, done, *args, **kwargs)
    if done == 20:
      raise KeyboardInterrupt("stopped after the save at update 20")

  monkeypatch.setattr(gan_figure5._Workdir, "save", save_then_die_at_20)  # pylint: disable=protected-access
  with pytest.raises(KeyboardInterrupt):
    gan_figure5.run(settings, None, size="smallest", runs_dir=tmp_path)
  saved = gan_figure5._Workdir(tmp_path / "ring8_erm").load(  # pylint: disable=protected-access
      gan_figure5.init_states(settings))
  assert saved[1] == 20 and [s["iteration"] for s in saved[2]] == [10]
  monkeypatch.setattr(gan_figure5._Workdir, "save", save)  # pylint: disable=protected-access
  resumed = gan_figure5.run(settings, None, size="smallest", runs_dir=tmp_path)
  for method in ("erm", "mixup"):
    assert (resumed["targets"]["ring8"][method]["snapshots"]
            == uninterrupted["targets"]["ring8"][method]["snapshots"])
  assert [p.name for p in (tmp_path / "ring8_erm").iterdir()] == ["30"]  # the latest only
  # A finished run is read back, not trained again.
  again = gan_figure5.run(settings, None, size="smallest", runs_dir=tmp_path)
  for method in ("erm", "mixup"):
    assert (again["targets"]["ring8"][method]["snapshots"]
            == resumed["targets"]["ring8"][method]["snapshots"])


def test_gan_settings_reach_the_networks_and_adam(monkeypatch):
  settings = gan_figure5.Settings(targets=("ring8",), seeds=(0, 1), width=64, init_std=0.02,
                                  adam_b1=0.5, num_iterations=10, snapshots=(10,))
  built = []
  adam = gan_figure5.optim.adam
  monkeypatch.setattr(gan_figure5.optim, "adam",
                      lambda *args, **kwargs: built.append(kwargs) or adam(*args, **kwargs))
  states = gan_figure5.init_states(settings)
  kernel = np.asarray(states.generator.params["hidden2"]["kernel"])
  assert kernel.shape == (2, 64, 64) and abs(kernel.std() - 0.02) < 0.002
  assert not np.asarray(states.discriminator.params["output"]["bias"]).any()
  assert built == [{"b1": 0.5}, {"b1": 0.5}]  # the generator's and the discriminator's


def test_gan_settings_reach_the_step_the_toy_and_the_table(tmp_path, monkeypatch):
  settings = dataclasses.replace(gan_figure5.SIZES["smallest"], generator_loss="non_saturating",
                                 target_std=0.05)
  built, drawn = [], []
  make_step, sample = gan_figure5.gan.make_gan_train_step, gan_figure5.toy.sample_gan_target
  monkeypatch.setattr(gan_figure5.gan, "make_gan_train_step",
                      lambda **kwargs: built.append(kwargs) or make_step(**kwargs))
  monkeypatch.setattr(gan_figure5.toy, "sample_gan_target",
                      lambda *args: drawn.append(args[3]) or sample(*args))
  results = gan_figure5.run(settings, tmp_path, size="smallest")
  assert [b["generator_loss"] for b in built] == ["non_saturating"] * 2  # ERM and mixup
  assert set(drawn) == {0.05}
  assert "(generator_loss non_saturating, target_std 0.05)" in (tmp_path / "table.md").read_text()
  assert results["settings"]["target_std"] == 0.05
  for bad, match in ((dict(generator_loss="hinge"), "generator_loss"),
                     (dict(target_std=0.0), "target_std"), (dict(target_std=0.5), "target_std")):
    with pytest.raises(ValueError, match=match):
      dataclasses.replace(settings, **bad)


def test_gan_diagnostic_sizes_change_one_thing_each():
  cpu = gan_figure5.SIZES["cpu"]
  for size, field in (("cpu_lr1e-4", "learning_rate"), ("cpu_init0.02", "init_std"),
                      ("cpu_b1_0.5", "adam_b1"), ("cpu_non_saturating", "generator_loss"),
                      ("cpu_std0.05", "target_std")):
    assert dataclass_diff(gan_figure5.SIZES[size], cpu) == {field}, size
  full = gan_figure5.SIZES["full"]
  assert dataclass_diff(gan_figure5.SIZES["full_std0.05"], full) == {"target_std"}
  assert dataclass_diff(gan_figure5.SIZES["full_non_saturating"], full) == {"generator_loss"}


def test_gan_scales_keep_the_paper_one_flag_away():
  full, cpu = gan_figure5.SIZES["full"], gan_figure5.SIZES["cpu"]
  assert (full.width, full.num_iterations, full.batch_size, full.discriminator_steps) == (
      512, 20_000, 128, 5)
  assert full.snapshots == (10, 100, 1000, 10_000, 20_000) and full.alpha == 0.2
  assert dataclass_diff(full, cpu) == {"width", "num_iterations", "snapshots"}
  with pytest.raises(ValueError, match="snapshots"):
    gan_figure5.Settings(num_iterations=100, snapshots=(10, 50))


def dataclass_diff(a, b):
  return {k for k in a.__dataclass_fields__ if getattr(a, k) != getattr(b, k)}


def test_quickstart_small_runs_with_no_data_directory(tmp_path, monkeypatch):
  monkeypatch.delenv("MIXUP_JAX_DATA_DIR", raising=False)
  results = quickstart.run(quickstart.small_settings(), tmp_path)
  assert results["digits"]["num_train"] + results["digits"]["num_test"] == 1797
  assert len(results["digits"]["mixup"]["per_seed"]) == 2
  table = quickstart.table(results)
  assert "digits" in table and "band" in table
  assert 0 < (tmp_path / "quickstart.png").stat().st_size < 300_000
  for method in ("erm", "mixup"):  # the table's +- is a standard error, as everywhere
    r = results["digits"][method]
    assert r["se"] == pytest.approx(r["std"] / np.sqrt(len(r["per_seed"])))
    assert f"{r['mean']:.2f} +- {r['se']:.2f}" in table
  for size in ("full", "smallest"):  # never over the committed results
    assert quickstart.RESULTS_DIR.resolve() not in (
        quickstart.default_out_dir(size).resolve(), *quickstart.default_out_dir(size).resolve().parents)


@pytest.mark.parametrize("variant", speech_config.VARIANTS)
def test_speech_configs_are_valid_paper_rows(variant):
  config = speech_config.get_config(variant)
  trainer.validate_config(config)
  assert (config.batch_size, config.num_epochs, config.learning_rate) == (100, 30, 3e-3)
  assert config.mixup.alpha == {"erm": 0.0, "alpha0.1": 0.1, "alpha0.2": 0.2}[variant.split("_")[1]]
  assert config.mixup.start_epoch == (5 if config.mixup.alpha else 0)
  models.get_model(config.model, 30, **config.model_options)


def test_speech_config_rejects_unknown_variant():
  with pytest.raises(ValueError, match="vgg11_alpha0.2"):
    speech_config.get_config("resnet_erm")


@pytest.mark.parametrize("dataset", uci_config.DATASETS)
def test_uci_configs_are_valid(dataset):
  config = uci_config.get_config(dataset)
  trainer.validate_config(config)
  assert (config.model, tuple(config.model_options.hidden_sizes)) == ("mlp", (128, 128))
  assert (config.optimizer, config.learning_rate, config.num_epochs, config.batch_size) == (
      "adam", 1e-3, 10, 16)


def test_uci_protocols_reports_each_variant_beside_the_paper(tmp_path, data_dir):
  variants = ("ours: standardised, shuffled, 80/20, 10 epochs", "file order (no shuffling)")
  results = uci_protocols.run(2, tmp_path, data_dir, datasets=("iris",), variants=variants)
  ours, unshuffled = (results["rows"]["iris"][v] for v in variants)
  assert ours["test"] != unshuffled["test"]  # the order changes what the network learns
  assert ours["majority"] == [pytest.approx(200 / 3)] * 2  # balanced classes: 2/3 wrong
  assert all(isinstance(r["matches"], bool) for r in (ours, unshuffled))
  table = (tmp_path / "protocols.md").read_text()
  assert "| **paper** | **21.3** |" in table and "| file order (no shuffling) |" in table
