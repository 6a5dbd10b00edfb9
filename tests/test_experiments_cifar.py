"""The paper-scale CIFAR and ImageNet experiment configs (Figure 3a, Tables 1, 2, 5)."""

import pytest

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
  for row in table5.ROWS:
    for wd in table5.WEIGHT_DECAYS:
      config = table5.get_config(f"{row},{wd}")
      assert config.weight_decay == float(wd) and config.schedule_shift == 1
      trainer.validate_config(config)
  latent = table5.get_config("latent3,5e-4")
  assert tuple(latent.mixup.stages) == (3,) and latent.mixup.alpha == 1.0
  smooth = table5.get_config("inputs_ls_0.4,1e-4")
  assert (smooth.mixup.targets, smooth.label_smoothing) == ("closest", 0.4)
  assert table5.get_config("inputs_sc_rp,1e-4").mixup.pairing == "same_class"
  assert table5.get_config("noise_0.2,1e-4").input_noise_sigma == 0.2
  with pytest.raises(ValueError, match="ROW,WEIGHT_DECAY"):
    table5.get_config("latent6,1e-4")

