r"""Google Speech Commands (paper Figure 4): LeNet and VGG-11, ERM and mixup.

Commands, one per row of the paper's table (VARIANT after the colon):

  python -m experiments.main --config=experiments/configs/speech.py:VARIANT \
      --workdir=/tmp/mixup_speech_VARIANT --data_dir=/path/to/data

  VARIANT         paper validation / test error (%)
  lenet_erm       9.8 / 10.3
  lenet_alpha0.1  10.1 / 10.8
  lenet_alpha0.2  10.2 / 11.3
  vgg11_erm       5.0 / 4.6
  vgg11_alpha0.1  4.0 / 3.8
  vgg11_alpha0.2  3.9 / 3.4

The paper's claim: mixup helps the larger VGG-11 and slightly hurts LeNet. The
reference code of this setup (GCommandsPytorch) reports 89 % (LeNet) and 94 %
(VGG-11) test accuracy for ERM. `results.json` holds the final validation error
(`final_validation_error`) and test error (`final_test_error`).

Data: the full Speech Commands v0.01 release (30 words, 51,088 / 6,798 / 6,835
train / validation / test clips by the release's own validation_list.txt and
testing_list.txt). Offline: extract speech_commands_v0.01.tar.gz into
`<data_dir>/speech_commands_v0.01/`. With TFDS: add `--config.data_source=tfds`,
which prepares the `speech_commands_v0_01` builder once from that archive (TFDS's
own `speech_commands` is the 12-class v0.02 task, a different problem). The offline
data folder shipped for tests holds a 300-clip subset only: it runs this config but
its numbers mean nothing.

Recipe (paper Section 3.3, Figure 4, and adiyoss/GCommandsPytorch): normalised log spectrograms
161 x 101, no augmentation; 30 epochs of batch 100 (510 steps per epoch); Adam
with lr 3e-3 divided by 10 every 10 epochs, no weight decay; mixup runs train 5
epochs by ERM before mixing starts (one lambda per batch). LeNet has channel
dropout 0.5 after its second convolution and dropout 0.5 after its first dense
layer; VGG-11 has BatchNorm after every convolution.

Runtime on one A100 / H100-class GPU (estimates, not measured): VGG-11 is ~14
GFLOPs per training example (4.7 forward), 21 PFLOPs over the 30 epochs: about 5-10
minutes of GPU compute, so the run is bound by the host computing spectrograms
(an STFT per clip in NumPy, ~1 ms): with `data_workers=8` roughly 15-30 minutes
per run. LeNet is ~0.34 GFLOPs per example and takes about as long, all of it
input-bound. Several GPUs: `--config.parallel=sharded` with a batch size divisible
by the device count (e.g. `--config.batch_size=96` on 8 devices changes the recipe
slightly; 100 works on 1, 2, 4 or 5 devices).
"""

import ml_collections

from experiments.configs import default

_MODELS = {"lenet": "lenet_speech", "vgg11": "vgg11_speech"}
_ALPHAS = {"erm": 0.0, "alpha0.1": 0.1, "alpha0.2": 0.2}
VARIANTS = tuple(f"{m}_{a}" for m in _MODELS for a in _ALPHAS)


def get_config(variant: str = "vgg11_alpha0.2") -> ml_collections.ConfigDict:
  """One row of the paper's Speech Commands table; `variant` in VARIANTS."""
  model, _, method = variant.partition("_")
  if model not in _MODELS or method not in _ALPHAS:
    raise ValueError(f"unknown speech variant {variant!r}; use one of {VARIANTS}.")
  config = default.get_config()
  config.dataset = "speech_commands"
  config.data_workers = 8  # spectrograms are computed on the host

  config.model = _MODELS[model]
  config.model_options = ml_collections.ConfigDict()

  config.optimizer = "adam"
  config.learning_rate = 3e-3
  config.weight_decay = 0.0
  config.schedule = "speech"  # /10 every 10 epochs
  config.num_epochs = 30
  config.batch_size = 100
  config.eval_batch_size = 500

  config.mixup.alpha = _ALPHAS[method]
  config.mixup.start_epoch = 5 if _ALPHAS[method] > 0 else 0
  return config
