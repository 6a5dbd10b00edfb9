r"""Paper Table 2: CIFAR-10 with corrupted labels, PreAct ResNet-18, ERM / dropout / mixup.

  python -m experiments.main \
      --config=experiments/configs/table2.py:CORRUPTION,METHOD --workdir=DIR

CORRUPTION is 20, 50 or 80 (percent of training labels replaced by uniformly random
labels, test labels intact); METHOD is erm, dropout, mixup or mixup_dropout. Each
string gives the paper's best setting of that row (below); the paper's grids are
reached by overriding `--config.mixup.alpha=A` (mixup: {1, 2, 8, 32}; mixup + dropout:
{1, 2, 4, 8}) and `--config.model_options.dropout_rate=P` (dropout: {0.5, 0.7, 0.8,
0.9}; mixup + dropout: {0.3, 0.5, 0.7}). Dropout is one layer in each PreAct block
after the ReLU between its two convolutions.

The CIFAR recipe of experiments/configs/default.py otherwise (200 epochs, batch 128,
lr 0.1 / 10 at epochs 100 and 150, weight decay 1e-4, crop + flip). The corrupted
labels are drawn once from `config.label_corruption_seed` (`mixup_jax.data.corruption`). The loop logs
the running training accuracy against the corrupted labels (`train/accuracy`) and
the true ones (`train/true_label_accuracy`) on the augmented, mixed inputs; the
paper's last two columns, the final model's error on the clean training set against
each label set, come from the entry that runs the whole table:

  python -m experiments.table2_cpu --size=full --data_dir=DIR

What to expect (paper Table 2, %; one A100 / H100-class GPU: ~1 h per run, an
estimate as for experiments/configs/cifar.py):

| config string    | setting        | best | last | train err, true | train err, corrupted |
|------------------|----------------|------|------|-----------------|----------------------|
| 20,erm           |                | 12.7 | 16.6 |  0.05 |  0.28 |
| 20,dropout       | p = 0.7        |  8.8 | 10.4 |  5.26 | 83.55 |
| 20,mixup         | alpha = 8      |  5.9 |  6.4 |  2.27 | 86.32 |
| 50,erm           |                | 18.8 | 44.6 |  0.26 |  0.64 |
| 50,dropout       | p = 0.8        | 14.1 | 15.5 | 12.71 | 86.98 |
| 50,mixup         | alpha = 32     | 11.3 | 12.7 |  5.84 | 85.71 |
| 80,erm           |                | 36.5 | 73.9 |  0.62 |  0.83 |
| 80,dropout       | p = 0.8        | 30.9 | 35.1 | 29.84 | 86.37 |
| 80,mixup         | alpha = 32     | 25.3 | 30.9 | 18.92 | 85.44 |
| 80,mixup_dropout | alpha 8, p 0.3 | 24.0 | 24.8 | 19.70 | 87.67 |

("best" / "last": the best test error over training and the one after the last epoch.)

The paper lists mixup + dropout at 80 % only; `20,mixup_dropout` and
`50,mixup_dropout` use the same alpha = 8, p = 0.3.
"""

import ml_collections

from experiments.configs import default

CORRUPTIONS = (20, 50, 80)
METHODS = ("erm", "dropout", "mixup", "mixup_dropout")

# The paper's best setting of each row: (corruption %, method) -> (alpha, dropout p).
SETTINGS = {
    (20, "erm"): (0.0, 0.0), (20, "dropout"): (0.0, 0.7), (20, "mixup"): (8.0, 0.0),
    (20, "mixup_dropout"): (8.0, 0.3),
    (50, "erm"): (0.0, 0.0), (50, "dropout"): (0.0, 0.8), (50, "mixup"): (32.0, 0.0),
    (50, "mixup_dropout"): (8.0, 0.3),
    (80, "erm"): (0.0, 0.0), (80, "dropout"): (0.0, 0.8), (80, "mixup"): (32.0, 0.0),
    (80, "mixup_dropout"): (8.0, 0.3),
}

# Paper Table 2 (%): (best test, last test, train error true labels, train error corrupted).
PAPER = {
    (20, "erm"): (12.7, 16.6, 0.05, 0.28),
    (20, "dropout"): (8.8, 10.4, 5.26, 83.55),
    (20, "mixup"): (5.9, 6.4, 2.27, 86.32),
    (50, "erm"): (18.8, 44.6, 0.26, 0.64),
    (50, "dropout"): (14.1, 15.5, 12.71, 86.98),
    (50, "mixup"): (11.3, 12.7, 5.84, 85.71),
    (80, "erm"): (36.5, 73.9, 0.62, 0.83),
    (80, "dropout"): (30.9, 35.1, 29.84, 86.37),
    (80, "mixup"): (25.3, 30.9, 18.92, 85.44),
    (80, "mixup_dropout"): (24.0, 24.8, 19.70, 87.67),
}


def parse(spec: str) -> tuple[int, str]:
  """'80,mixup' -> (80, 'mixup'), checked."""
  parts = tuple(p.strip() for p in spec.split(","))
  if len(parts) != 2 or parts[0] not in tuple(str(c) for c in CORRUPTIONS):
    raise ValueError(f"config string must be CORRUPTION,METHOD with CORRUPTION in "
                     f"{CORRUPTIONS}, got {spec!r}.")
  if parts[1] not in METHODS:
    raise ValueError(f"METHOD must be one of {METHODS}, got {parts[1]!r} in {spec!r}.")
  return int(parts[0]), parts[1]


def get_config(spec: str = "80,mixup") -> ml_collections.ConfigDict:
  """The paper's run `spec` = 'CORRUPTION,METHOD' (see the module docstring)."""
  corruption, method = parse(spec)
  alpha, dropout = SETTINGS[(corruption, method)]
  config = default.get_config()
  config.label_corruption = corruption / 100
  config.model_options = ml_collections.ConfigDict({"dropout_rate": dropout})
  config.mixup.alpha = alpha
  return config
