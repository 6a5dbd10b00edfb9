r"""CIFAR-10 / CIFAR-100 x {PreAct ResNet-18, WRN-28-10, DenseNet-BC-190} x {ERM, mixup}.

The twelve runs of the paper's Figure 3a, one config string each:

  python -m experiments.main \
      --config=experiments/configs/cifar.py:DATASET,MODEL,METHOD --workdir=DIR

DATASET is cifar10 or cifar100, MODEL preact_resnet18, wrn28_10 or densenet_bc190,
METHOD erm or mixup (alpha = 1). For example

  python -m experiments.main --config=experiments/configs/cifar.py:cifar10,wrn28_10,mixup \
      --workdir=/tmp/cifar10_wrn_mixup

Recipe (paper Section 3.2 and the authors' `train.py`, facebookresearch/mixup-cifar10): 200 epochs of batch 128, SGD with
momentum 0.9 and weight decay 1e-4 on all parameters, lr 0.1 divided by 10 after epochs
100 and 150 (WRN-28-10: after 60, 120 and 180), no dropout, pad-4 random crop + flip,
per-channel normalisation, mixup alpha = 1 with one lambda per batch. DenseNet-BC-190
has growth rate 40 and recomputes its bottleneck layers in the backward pass
(`remat`), which changes nothing but the memory it needs.

Data: CIFAR-10 is read from the offline data directory (--data_dir or
$MIXUP_JAX_DATA_DIR). The offline CIFAR-100 is only a 486 / 916 image subset, so the
CIFAR-100 configs read TFDS (`data_source='tfds'`): prepare it once with
`tfds build cifar100 --file_format=array_record` (needs TensorFlow and internet; see
experiments/README.md).

What to expect, test error (%) at the end of training, paper Figure 3a:

| config string                   | paper | GPU time (estimate) |
|---------------------------------|-------|---------------------|
| cifar10,preact_resnet18,erm     |  5.6  | ~1 h   |
| cifar10,preact_resnet18,mixup   |  4.2  | ~1 h   |
| cifar10,wrn28_10,erm            |  3.8  | ~4 h   |
| cifar10,wrn28_10,mixup          |  2.7  | ~4 h   |
| cifar10,densenet_bc190,erm      |  3.7  | ~12 h  |
| cifar10,densenet_bc190,mixup    |  2.7  | ~12 h  |
| cifar100,preact_resnet18,erm    | 25.6  | ~1 h   |
| cifar100,preact_resnet18,mixup  | 21.1  | ~1 h   |
| cifar100,wrn28_10,erm           | 19.4  | ~4 h   |
| cifar100,wrn28_10,mixup         | 17.5  | ~4 h   |
| cifar100,densenet_bc190,erm     | 19.0  | ~12 h  |
| cifar100,densenet_bc190,mixup   | 16.8  | ~12 h  |

GPU times are for one A100 / H100-class GPU in float32, estimated from each network's
forward cost (0.56, 5.2 and 9.4 GFLOPs per image) and typical utilisation; they are
not measured. Public reproductions land close to the paper for PreAct ResNet-18
(authors' code, median of the last 10 epochs: 5.53 ERM / 4.24 mixup; tensorpack
5.48 / 4.17) and somewhat short of it for WRN-28-10 mixup (96.5-96.9 % accuracy
against the paper's 97.3).
"""

import ml_collections

from experiments.configs import default

DATASETS = ("cifar10", "cifar100")
MODELS = ("preact_resnet18", "wrn28_10", "densenet_bc190")
METHODS = ("erm", "mixup")

# Paper Figure 3a, test error (%): (dataset, model) -> (ERM, mixup).
PAPER = {
    ("cifar10", "preact_resnet18"): (5.6, 4.2),
    ("cifar10", "wrn28_10"): (3.8, 2.7),
    ("cifar10", "densenet_bc190"): (3.7, 2.7),
    ("cifar100", "preact_resnet18"): (25.6, 21.1),
    ("cifar100", "wrn28_10"): (19.4, 17.5),
    ("cifar100", "densenet_bc190"): (19.0, 16.8),
}


def parse(spec: str) -> tuple[str, str, str]:
  """'cifar10,wrn28_10,mixup' -> ('cifar10', 'wrn28_10', 'mixup'), checked."""
  parts = tuple(p.strip() for p in spec.split(","))
  if len(parts) != 3:
    raise ValueError(f"config string must be DATASET,MODEL,METHOD, got {spec!r}.")
  dataset, model, method = parts
  for name, value, valid in (("DATASET", dataset, DATASETS), ("MODEL", model, MODELS),
                             ("METHOD", method, METHODS)):
    if value not in valid:
      raise ValueError(f"{name} must be one of {valid}, got {value!r} in {spec!r}.")
  return dataset, model, method


def get_config(spec: str = "cifar10,preact_resnet18,mixup") -> ml_collections.ConfigDict:
  """The paper's run `spec` = 'DATASET,MODEL,METHOD' (see the module docstring)."""
  dataset, model, method = parse(spec)
  config = default.get_config()
  config.dataset = dataset
  if dataset == "cifar100":
    config.data_source = "tfds"  # The offline CIFAR-100 is a small test subset.
  config.model = model
  if model == "wrn28_10":
    config.schedule = "wrn"
  if model == "densenet_bc190":
    config.model_options = ml_collections.ConfigDict({"growth_rate": 40, "remat": True})
  config.mixup.alpha = 1.0 if method == "mixup" else 0.0
  return config
