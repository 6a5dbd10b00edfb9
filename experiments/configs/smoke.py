r"""A smoke test of the whole pipeline: a small CNN, 300 steps of mixup on real CIFAR-10.

Command:

  python -m experiments.main --config=experiments/configs/smoke.py \
      --workdir=/tmp/mixup_smoke --data_dir=../shared/data

It reads the full CIFAR-10 from the offline data directory, trains a small VGG-style
CNN (`cifar_small_cnn`, width 16, 36k parameters) for 300 steps of batch 64 (0.38
epochs) with the paper's augmentation and mixup (alpha = 1), evaluates on the 10,000
test images and checkpoints every 100 steps. What to expect: about 60 % test error at
the end (chance is 90 %), after about 80 CPU-seconds (a minute or so of wall time on
two idle cores). Kill it and rerun the same command: it resumes from the last
checkpoint and ends with the same numbers.
"""

import ml_collections

from experiments.configs import default


def get_config() -> ml_collections.ConfigDict:
  """The default config, shrunk to a small CNN and 300 steps."""
  config = default.get_config()
  config.model = "cifar_small_cnn"
  config.model_options = ml_collections.ConfigDict({"width": 16})
  config.batch_size = 64
  config.eval_batch_size = 1000
  config.num_train_steps = 300
  config.schedule = "constant"
  config.learning_rate = 0.05
  config.log_every_steps = 20
  config.eval_every_steps = 100
  config.checkpoint_every_steps = 100
  return config
