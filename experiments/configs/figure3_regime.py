r"""Figure 3 where ERM memorises: a fixed class-balanced CIFAR-10 subset, the authors' network.

  python -m experiments.main --config=experiments/configs/figure3_regime.py:METHOD \
      --workdir=DIR [--config.seed=1] [--config.train_size=2000]

METHOD is erm, mixup (alpha 1, the paper's CIFAR value), cutmix (CutMix alpha 1) or
switch (mixup or CutMix with probability 1/2 per batch). `python -m
experiments.figure3_regime` runs the sweep and writes the table and the figures.

The paper's claim is about networks that fit their augmented training set. On the
full CIFAR-10 a 2-core CPU affords about 10 epochs of a small network, which
underfits (experiments/configs/figure3_cpu.py), so here the data shrinks instead of
the schedule: the first TRAIN_SIZE / 10 training images of each class, the authors'
PreAct ResNet-18 topology (two blocks per stage) at width 16, the paper's crop + flip,
SGD 0.1 / momentum 0.9 / weight decay 1e-4 / batch 128 and the paper's step schedule
scaled to the length (/10 at 50 % and 75 % of the updates). Every NUM_EPOCHS-th of the
run is evaluated on all 10,000 test images, for learning curves.

The data-size curve keeps the number of updates (NUM_UPDATES) and changes train_size:
`get_config("mixup,2000")` is 2,000 images for the same updates.
"""

import ml_collections

from experiments.configs import default

METHODS = ("erm", "mixup", "cutmix", "switch")
WIDTH, BLOCKS = 16, 2
TRAIN_SIZE = 5000
BATCH_SIZE = 128
NUM_UPDATES = 7800  # 200 epochs of the 5,000 images (39 batches of 128 each)
EVALUATIONS = 40  # test evaluations per run, evenly spaced


def get_config(spec: str = "mixup") -> ml_collections.ConfigDict:
  """The regime run of 'METHOD' or 'METHOD,TRAIN_SIZE' (module docstring)."""
  method, _, size = spec.partition(",")
  if method not in METHODS:
    raise ValueError(f"METHOD must be one of {METHODS}, got {method!r}.")
  train_size = int(size) if size else TRAIN_SIZE
  if train_size < BATCH_SIZE or train_size % 10:
    raise ValueError(f"TRAIN_SIZE must be a multiple of 10 (one tenth per class) and at "
                     f"least the batch size {BATCH_SIZE}, got {train_size}.")
  config = default.get_config()
  config.train_size = train_size
  config.train_subset = "balanced"
  config.model_options = ml_collections.ConfigDict({"width": WIDTH, "blocks": BLOCKS})
  config.batch_size = BATCH_SIZE
  config.num_train_steps = NUM_UPDATES
  # The step schedule counts in epochs; at other sizes the drops fall on the epoch
  # that holds update 50 % / 75 % (the same updates to within one epoch).
  steps_per_epoch = train_size // BATCH_SIZE
  config.schedule = "step"
  config.schedule_boundaries = (NUM_UPDATES // 2 // steps_per_epoch,
                                NUM_UPDATES * 3 // 4 // steps_per_epoch)
  config.mixup.alpha = 1.0 if method in ("mixup", "switch") else 0.0
  config.mixup.cutmix_alpha = 1.0 if method in ("cutmix", "switch") else 0.0
  config.mixup.switch_prob = 0.5
  config.eval_every_steps = NUM_UPDATES // EVALUATIONS
  config.log_every_steps = steps_per_epoch  # the regime check reads the last epoch
  config.checkpoint_every_steps = NUM_UPDATES // EVALUATIONS
  return config
