"""The default config of the training loop: every field, its default and what it means.

`default_config()` is the paper's CIFAR-10 recipe (Figure 3a: PreAct ResNet-18, mixup
alpha = 1, 200 epochs); every experiment config starts from it and overrides fields.
It is also the schema: `config_checks.validate_config` refuses a field it does not
have, so a typo fails at once instead of being ignored. The values each field accepts
are in config_checks.
"""

import copy

import ml_collections

# Fields whose keys are the options of the chosen model or dataset builder: a config's
# own value replaces the default whole.
FREE_FORM_FIELDS = ("model_options", "dataset_options")


def default_config() -> ml_collections.ConfigDict:
  """The paper's CIFAR-10 PreAct ResNet-18 mixup run, every field at its default."""
  config = ml_collections.ConfigDict()

  # --- Data (mixup_jax.data.get_dataset) ---
  config.dataset = "cifar10"
  # Folder of the offline datasets; empty: $MIXUP_JAX_DATA_DIR (or --data_dir).
  config.data_dir = ""
  config.data_source = "offline"  # 'offline' (arrays in data_dir) or 'tfds'
  config.dataset_options = ml_collections.ConfigDict()  # builder-specific options
  # Fraction of training labels replaced by random ones (Table 2). The labels are
  # drawn from their own seed, not `seed`: the paper corrupts the data once, so a
  # sweep over seeds trains on the same corrupted labels.
  config.label_corruption = 0.0
  config.label_corruption_seed = 0
  # Keep only the first this many train / test examples (0: the whole split):
  # the fixed small subsets of CPU-scale runs (e.g. table2_cpu.py).
  config.train_size = 0
  config.test_size = 0
  # Which train_size examples: 'leading' (the first ones, in the split's order) or
  # 'balanced' (the first train_size / C of each of the C classes).
  config.train_subset = "leading"
  config.data_workers = 0  # grain worker processes reading the training data

  # --- Model (mixup_jax.models.get_model) ---
  config.model = "preact_resnet18"
  # Keyword options of the model's builder (`mixup_jax.models.model_options(name)`);
  # empty: the builder's defaults (the paper's network). The command line can only
  # override options a config lists (e.g. smoke.py's --config.model_options.width).
  config.model_options = ml_collections.ConfigDict()

  # --- Optimisation (mixup_jax.optim) ---
  config.optimizer = "sgd"  # 'sgd' (momentum, PyTorch weight decay) or 'adam'
  config.learning_rate = 0.1
  config.momentum = 0.9
  config.weight_decay = 1e-4
  # Learning-rate schedule: 'constant', 'cifar' (/10 at epochs 100 and 150),
  # 'wrn' (/10 at 60, 120, 180), 'imagenet' (5 warm-up epochs, then /10 at
  # 30/60/80 for num_epochs 90, at 60/120/180 for 200), 'speech' (/10 every 10 epochs),
  # 'step' (times schedule_factor at each of schedule_boundaries, in epochs) or
  # 'cosine' (warmup_epochs of linear warm-up, then cosine decay to 0 at the end).
  config.schedule = "cifar"
  config.schedule_boundaries = ()  # epochs, for 'step'; e.g. (15, 22) for a 30-epoch run
  config.schedule_factor = 0.1
  config.warmup_epochs = 0  # for 'cosine'
  # Epochs by which every decay is delayed; the authors' code effectively uses 1.
  config.schedule_shift = 0
  config.num_epochs = 200
  config.num_train_steps = 0  # > 0 overrides num_epochs
  config.batch_size = 128  # global: summed over all devices and processes
  config.eval_batch_size = 500  # global; the last batch is padded and masked

  # --- Mixing: the fields of mixup_jax.MixSpec (MixSpec.from_config) ---
  config.mixup = ml_collections.ConfigDict()
  config.mixup.alpha = 1.0  # Beta(alpha, alpha); 0 trains by ERM
  # One lambda per 'batch', 'example', 'pair' (rows i and n - 1 - i: timm's pair mode,
  # with pairing 'flip') or 'device'.
  config.mixup.granularity = "batch"
  # 'random', 'same_class' (Table 5's SC), 'flip' / 'roll' (the fixed partners of
  # timm / of torchvision and big_vision, per device) or 'knn' (one of the knn_k nearest
  # training neighbours in input space, within the class if knn_within_class).
  config.mixup.pairing = "random"
  config.mixup.knn_k = 200
  config.mixup.knn_within_class = False
  config.mixup.num_sources = 2  # > 2: Dirichlet weights over that many examples
  config.mixup.targets = "mixed"  # 'mixed', or 'closest' (Table 5: inputs only)
  config.mixup.prob = 1.0  # probability of mixing a batch at all
  config.mixup.sort_weights = False  # each example keeps the largest weight (big_vision)
  # CutMix (mixup_jax.cutmixing): > 0 pastes a box of area ~ 1 - Beta(cutmix_alpha,
  # cutmix_alpha) from the partner. With alpha > 0 too, each batch (row, group: see
  # granularity) uses CutMix with probability switch_prob, else mixup.
  config.mixup.cutmix_alpha = 0.0
  config.mixup.switch_prob = 0.5
  config.mixup.correct_lam = True  # CutMix's shares from the clipped box, not the draw
  config.mixup.area_range = ()  # (min, max) of CutMix's box area fraction; () free
  config.mixup.cutmix_minmax = ()  # timm's (min, max) box side fractions; () off
  # Where to mix: () mixes the inputs; (k,) mixes before model stage k (1-5),
  # several stages draw one per step (Table 5's latent mixing).
  config.mixup.stages = ()
  config.mixup.start_epoch = 0  # ERM epochs before mixing starts (speech: 5)
  config.mixup.global_pairing = False  # partners from the whole global batch
  config.label_smoothing = 0.0  # the paper's epsilon (Table 5)
  config.input_noise_sigma = 0.0  # Gaussian input noise baseline (Table 5)

  # --- Run ---
  config.seed = 0  # one seed fixes init, data order, augmentation and mixing
  # 'jit' (one device of one process), or over all devices: 'pmap', 'sharded'
  # (jit + NamedSharding) or 'shard_map'.
  config.parallel = "jit"
  config.log_every_steps = 100
  config.eval_every_steps = 0  # 0: after every epoch (and always at the end)
  config.eval_from_epoch = 0  # periodic evaluations start here (the last step always evaluates)
  config.checkpoint_every_steps = 0  # 0: after every epoch (and at the end)
  config.max_checkpoints_to_keep = 2  # plus the one with the best test error
  return config


def with_defaults(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A copy of `config` in which every field it lacks has its default_config() value.

  A config written before a field existed (an older workdir's, or one built by hand)
  then reads like any other, so the loop never restates a default. The config's own
  values are copied as they are, neither converted nor checked (validate_config
  checks them); the free-form option dicts are never filled in.
  """
  if isinstance(config, ml_collections.FrozenConfigDict):
    completed = config.as_configdict()
  elif isinstance(config, ml_collections.ConfigDict):
    completed = copy.deepcopy(config)
  else:
    completed = ml_collections.ConfigDict(copy.deepcopy(dict(config)))
  _fill(completed, default_config())
  return completed


def _fill(node: ml_collections.ConfigDict, defaults: ml_collections.ConfigDict) -> None:
  with node.unlocked():
    for key, default in defaults.items():
      if key not in node:
        node[key] = copy.deepcopy(default)
      elif (key not in FREE_FORM_FIELDS and isinstance(default, ml_collections.ConfigDict)
            and isinstance(node[key], ml_collections.ConfigDict)):
        _fill(node[key], default)
