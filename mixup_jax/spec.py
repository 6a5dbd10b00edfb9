"""One value that says how a train step mixes, validated once.

  spec = MixSpec(alpha=1.0)                                  # the paper's mixup
  spec = MixSpec(alpha=0.8, cutmix_alpha=1.0, label_smoothing=0.1)  # timm's switch
  spec = MixSpec.from_config(config, steps_per_epoch)        # config.mixup and friends
  train_step = make_train_step(num_classes=10, spec=spec)

A `MixSpec` is frozen and checked when it is built: every field is refused with its
name and the fix, and so are combinations that cannot run (CutMix at a hidden
layer, k-way mixing with fixed partners, ...). It names one of four methods:
"erm" (nothing is mixed), "mixup" (`mixup_jax.mixing`, at the inputs or, with
`stages`, inside the model), "cutmix" and "switch" (`mixup_jax.cutmixing`).

`spec.sample(key, x, labels)` draws everything the batch needs and returns a
`MixDraw`; `draw.inputs(x)` mixes the inputs and `draw.targets(labels, C)` builds
the soft targets that go with them, so the train step never looks inside a method.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping

import flax.struct
import jax
import jax.numpy as jnp

from mixup_jax import config_defaults
from mixup_jax import _checks
from mixup_jax import cutmixing
from mixup_jax import mixing as mixing_lib
from mixup_jax.models.layers import MIX_STAGES

PyTree = Any
METHODS = ("erm", "mixup", "cutmix", "switch")

# Where each field lives in a config (experiments/configs/default.py), so a config
# error names the config field.
CONFIG_FIELDS = {
    "alpha": "mixup.alpha", "cutmix_alpha": "mixup.cutmix_alpha",
    "switch_prob": "mixup.switch_prob", "granularity": "mixup.granularity",
    "pairing": "mixup.pairing", "num_sources": "mixup.num_sources",
    "targets": "mixup.targets", "prob": "mixup.prob",
    "global_pairing": "mixup.global_pairing", "sort_weights": "mixup.sort_weights",
    "label_smoothing": "label_smoothing", "stages": "mixup.stages",
    "start_step": "mixup.start_epoch", "correct_lam": "mixup.correct_lam",
    "area_range": "mixup.area_range", "cutmix_minmax": "mixup.cutmix_minmax",
}


class MixSpecError(ValueError):
  """A field of a MixSpec has a value no step can use; `field` names it."""

  def __init__(self, field: str, reason: str):
    super().__init__(f"{field}: {reason}")
    self.field, self.reason = field, reason


def _field(name: str, check, *args) -> None:
  """Runs a shared check, re-raised as a MixSpecError naming `name`."""
  try:
    check(name, *args)
  except ValueError as error:
    message = str(error)
    raise MixSpecError(name, message[len(name) + 1:] if message.startswith(name) else
                       message) from None


def _require(ok: bool, field: str, reason: str) -> None:
  if not ok:
    raise MixSpecError(field, reason)


@dataclasses.dataclass(frozen=True)
class MixSpec:
  """How a train step mixes its batches.

  Attributes:
    alpha: mixup's lambda ~ Beta(alpha, alpha) (Dirichlet for K sources); 0 is off.
    cutmix_alpha: CutMix's lambda ~ Beta(cutmix_alpha, cutmix_alpha); 0 is off. With
      both > 0 each batch (row, group: `granularity`) uses CutMix with probability
      `switch_prob`, else mixup, as timm's Mixup.
    switch_prob: the probability of CutMix when both are on.
    granularity: "batch", "example", "pair" or "device": what shares one lambda
      (`mixup_jax.sample_mixing`).
    pairing: "random", "same_class", "flip", "roll" or "given" (the batch carries
      each row's partner, e.g. its k-nearest neighbour).
    num_sources: K examples mixed into each row (mixup only).
    targets: "mixed" (the paper) or "closest" (the target of the heavier source).
    prob: probability that a batch / row / group is mixed at all.
    global_pairing: partners from the batch gathered over the devices (random
      pairing of mixup or CutMix, not the switch).
    sort_weights: each example keeps the largest weight (big_vision).
    label_smoothing: the paper's epsilon, with or without mixing, in [0, 1).
    stages: () mixes the inputs; model stages in 0..5 mix hidden activations there
      (Table 5), one drawn per step when several are given (mixup only).
    start_step: updates of ERM before mixing starts (the speech recipe's warm-up).
    correct_lam: CutMix's shares from the clipped box (True) or the drawn lambda.
    area_range: CutMix's (min, max) bounds on the box area fraction, or None.
    cutmix_minmax: timm's (min, max) box side fractions, or None.
  """

  alpha: float = 0.0
  cutmix_alpha: float = 0.0
  switch_prob: float = 0.5
  granularity: str = "batch"
  pairing: str = "random"
  num_sources: int = 2
  targets: str = "mixed"
  prob: float = 1.0
  global_pairing: bool = False
  sort_weights: bool = False
  label_smoothing: float = 0.0
  stages: tuple[int, ...] = ()
  start_step: int = 0
  correct_lam: bool = True
  area_range: tuple[float, float] | None = None
  cutmix_minmax: tuple[float, float] | None = None

  def __post_init__(self):
    _check_fields(self)
    # Numbers as floats and sequences as tuples, whatever a config or flag gave.
    for name in ("alpha", "cutmix_alpha", "switch_prob", "prob", "label_smoothing"):
      object.__setattr__(self, name, float(getattr(self, name)))
    object.__setattr__(self, "stages", tuple(int(k) for k in self.stages))
    for name in ("area_range", "cutmix_minmax"):
      value = getattr(self, name)
      if value is not None:
        object.__setattr__(self, name, tuple(float(v) for v in value))
    _check_combinations(self)

  @property
  def method(self) -> str:
    """"erm", "mixup", "cutmix" or "switch" (both alphas > 0)."""
    if self.alpha > 0 and self.cutmix_alpha > 0:
      return "switch"
    if self.cutmix_alpha > 0:
      return "cutmix"
    return "mixup" if self.alpha > 0 else "erm"

  @property
  def mixes(self) -> bool:
    return self.method != "erm"

  @classmethod
  def from_config(cls, config, steps_per_epoch: int) -> MixSpec:
    """The spec of `config.mixup`, `config.label_smoothing` and the epoch length.

    A config with alpha = cutmix_alpha = 0 trains by ERM: its other mixup fields
    are checked, then not used (so a sweep over alpha can include 0). Pairing
    "knn" becomes "given": the input pipeline ships each row's neighbour.
    """
    config = config_defaults.with_defaults(config)
    mix = config.mixup
    start_epoch = mix.start_epoch
    _require(_checks.is_int(start_epoch) and start_epoch >= 0, "start_step",
             f"must be an int >= 0 (epochs), got {start_epoch!r}.")
    _require(_checks.is_int(steps_per_epoch) and steps_per_epoch >= 1, "steps_per_epoch",
             f"must be a positive int, got {steps_per_epoch!r}.")
    _require(mix.pairing != "given", "pairing",
             "'given' is the train step's own pairing; a config asks for 'knn' (the "
             "input pipeline then ships each row's nearest neighbour).")
    fields = {
        "alpha": mix.alpha, "cutmix_alpha": mix.cutmix_alpha,
        "switch_prob": mix.switch_prob, "granularity": mix.granularity,
        "pairing": "given" if mix.pairing == "knn" else mix.pairing,
        "num_sources": mix.num_sources, "targets": mix.targets, "prob": mix.prob,
        "global_pairing": mix.global_pairing, "sort_weights": mix.sort_weights,
        "label_smoothing": config.label_smoothing, "stages": tuple(mix.stages),
        "start_step": start_epoch * steps_per_epoch,
        "correct_lam": mix.correct_lam,
        "area_range": _none_if_empty(mix.area_range),
        "cutmix_minmax": _none_if_empty(mix.cutmix_minmax),
    }
    erm = cls(label_smoothing=fields["label_smoothing"])
    if not (_positive(fields["alpha"]) or _positive(fields["cutmix_alpha"])):
      _check_fields(erm, fields)
      return erm
    return cls(**fields)

  def check_placement(self, *, axis_name: str | None, num_groups: int) -> None:
    """Refuses what the step's placement cannot do (raised by make_train_step)."""
    if not self.mixes:
      return
    _require(self.granularity != "device" or axis_name is not None or num_groups > 1,
             "granularity", "'device' needs axis_name (under pmap / shard_map) or "
             "num_groups > 1; use 'batch' on one device.")
    _require(not self.global_pairing or axis_name is not None, "global_pairing",
             "needs axis_name (pmap or shard_map): the axis to pair across.")

  def draw_stage(self, key: jax.Array):
    """The stage this step mixes at: a Python int when fixed, else a traced draw
    (the same on every device) that the model resolves with lax.cond."""
    if len(self.stages) == 1:
      return self.stages[0]
    index = jax.random.randint(key, (), 0, len(self.stages))
    return jnp.asarray(self.stages, jnp.int32)[index]

  def sample(self, rng: jax.Array, x: jax.Array, labels: jax.Array | None = None, *,
             axis_name: str | None = None, num_groups: int = 1,
             step: jax.Array | None = None) -> MixDraw:
    """Draws the mixing of one (local) batch `x` (for its shape) from `rng`.

    Args:
      rng: the key of this batch's mixing.
      x: the (augmented, float) inputs; CutMix needs [B, H, W, C] images.
      labels: [B] int class ids, needed for pairing "same_class".
      axis_name, num_groups: the step's placement (see `sample_mixing`).
      step: the update's index, for `start_step` (ERM before it).
    """
    _require(self.mixes, "alpha", "an ERM spec draws nothing: check spec.mixes first.")
    alpha, cutmix_alpha = self.alpha, self.cutmix_alpha
    if self.start_step and step is not None:
      warm = step >= self.start_step
      alpha = jnp.where(warm, alpha, 0.0)
      cutmix_alpha = jnp.where(warm, cutmix_alpha, 0.0)
    common = dict(granularity=self.granularity, pairing=self.pairing,
                  labels=labels if self.pairing == "same_class" else None, prob=self.prob,
                  axis_name=axis_name, num_groups=num_groups)
    if self.sort_weights:
      common["sort_weights"] = True
    cut_options = {}
    if self.method in ("cutmix", "switch"):
      _require(jnp.ndim(x) == 4, "cutmix_alpha",
               f"> 0 pastes boxes into [B, H, W, C] images; the batch's inputs have shape "
               f"{jnp.shape(x)}. Use alpha (mixup) for other inputs.")
      cut_options = dict(correct_lam=self.correct_lam, area_range=self.area_range)
      if self.cutmix_minmax is not None:
        cut_options["cutmix_minmax"] = self.cutmix_minmax
    size = jnp.shape(x)[0]
    if self.method == "switch":
      mixup, cut, use_cutmix = cutmixing.sample_switch(
          rng, size, jnp.shape(x)[1:3], mixup_alpha=alpha, cutmix_alpha=cutmix_alpha,
          switch_prob=self.switch_prob, **common, **cut_options)
      return MixDraw(mixing=cut.mixing, mixup=mixup, cut=cut, use_cutmix=use_cutmix,
                     method="switch", targets_mode=self.targets,
                     label_smoothing=self.label_smoothing, stages=())
    if self.method == "cutmix":
      cut = cutmixing.sample_cutmix(rng, cutmix_alpha, size, jnp.shape(x)[1:3],
                                    global_pairing=self.global_pairing, **common,
                                    **cut_options)
      return MixDraw(mixing=cut.mixing, cut=cut, method="cutmix",
                     targets_mode=self.targets, label_smoothing=self.label_smoothing,
                     stages=())
    mixing = mixing_lib.sample_mixing(rng, alpha, size, num_sources=self.num_sources,
                                      global_pairing=self.global_pairing, **common)
    return MixDraw(mixing=mixing, method="mixup", targets_mode=self.targets,
                   label_smoothing=self.label_smoothing, stages=self.stages)


@flax.struct.dataclass
class MixDraw:
  """What `MixSpec.sample` drew for one batch: apply it to inputs and targets.

  Attributes:
    mixing: partners and each row's weights, as the targets use them (for CutMix
      the pixel shares; for the switch the shares of the method each row got).
    mixup, cut, use_cutmix: the switch's mixup draw, CutMix draw and choice ([B]
      bool); `cut` alone for CutMix.
    method: "mixup", "cutmix" or "switch".
    stages: the model stages mixup mixes at, () for the inputs.
  """

  mixing: mixing_lib.Mixing
  mixup: mixing_lib.Mixing | None = None
  cut: cutmixing.CutMixing | None = None
  use_cutmix: jax.Array | None = None
  method: str = flax.struct.field(pytree_node=False, default="mixup")
  targets_mode: str = flax.struct.field(pytree_node=False, default="mixed")
  label_smoothing: float = flax.struct.field(pytree_node=False, default=0.0)
  stages: tuple[int, ...] = flax.struct.field(pytree_node=False, default=())

  @property
  def lam(self) -> jax.Array:
    """[B] float32: each row's own weight (pixel share for CutMix)."""
    return self.mixing.lam

  @property
  def in_model(self) -> bool:
    """Whether the model mixes (pass `mixing=draw.mixing` and a stage to it)."""
    return bool(self.stages)

  def inputs(self, x: PyTree, partner: PyTree | None = None) -> PyTree:
    """The mixed inputs (x itself when the model mixes at a hidden stage)."""
    if self.method == "switch":
      return cutmixing.apply_switch(self.mixup, self.cut, self.use_cutmix, x, partner)
    if self.method == "cutmix":
      return cutmixing.apply_cutmix(self.cut, x, partner)
    if self.in_model:
      return x
    return mixing_lib.apply_mixing(self.mixing, x, partner)

  def targets(self, y: jax.Array, num_classes: int,
              partner_y: jax.Array | None = None) -> jax.Array:
    """[B, C] float32 soft targets that go with `inputs`."""
    return mixing_lib.mix_targets(self.mixing, y, num_classes=num_classes,
                                  mode=self.targets_mode,
                                  label_smoothing=self.label_smoothing, partner_y=partner_y)


# ------------------------------------------------------------------------------
# Validation.
# ------------------------------------------------------------------------------


def _positive(value) -> bool:
  return _checks.is_number(value) and value > 0


def _none_if_empty(value):
  """Config fields hold () or None for 'not set'."""
  return None if value is None or (isinstance(value, (tuple, list)) and not value) else value


def _check_fields(spec: MixSpec, fields: Mapping[str, Any] | None = None) -> None:
  """Each field on its own: type, range, vocabulary."""
  get = (lambda name: fields[name]) if fields is not None else (
      lambda name: getattr(spec, name))
  for name in ("alpha", "cutmix_alpha"):
    value = get(name)
    _require(_checks.is_number(value), name,
             f"must be a finite number >= 0 (0: off), got {value!r}.")
    _field(name, _checks.check_concentration, value)
  for name in ("switch_prob", "prob"):
    _require(_checks.is_number(get(name)), name, f"must lie in [0, 1], got {get(name)!r}.")
    _field(name, _checks.check_probability, get(name))
  _field("label_smoothing", _checks.check_label_smoothing, get("label_smoothing"))
  _field("granularity", _checks.check_choice, get("granularity"), mixing_lib.GRANULARITIES)
  _field("pairing", _checks.check_choice, get("pairing"), mixing_lib.PAIRINGS)
  _field("targets", _checks.check_choice, get("targets"), mixing_lib.TARGET_MODES)
  num_sources = get("num_sources")
  _require(_checks.is_int(num_sources) and num_sources >= 2, "num_sources",
           f"must be an int >= 2, got {num_sources!r}.")
  for name in ("global_pairing", "sort_weights", "correct_lam"):
    _require(isinstance(get(name), bool), name, f"must be True or False, got {get(name)!r}.")
  start = get("start_step")
  _require(_checks.is_int(start) and start >= 0, "start_step",
           f"must be an int >= 0, got {start!r}.")
  stages = get("stages")
  _require(isinstance(stages, (tuple, list)) and all(
      _checks.is_int(k) and k in MIX_STAGES for k in stages), "stages",
           f"must be a tuple of model stages in {tuple(MIX_STAGES)} (() mixes the inputs), "
           f"got {stages!r}.")
  _require(len(set(stages)) == len(stages), "stages", f"lists a stage twice: {stages!r}.")
  _field("area_range", cutmixing.check_range, get("area_range"))
  try:
    cutmixing.check_range("cutmix_minmax", get("cutmix_minmax"), open_low=True)
  except ValueError as error:
    raise MixSpecError("cutmix_minmax", str(error).split(": ", 1)[-1]) from None


def _check_combinations(spec: MixSpec) -> None:
  """Fields that are fine alone but cannot run together."""
  method = spec.method
  if method == "erm":
    for name, used in (("stages", bool(spec.stages)), ("pairing", spec.pairing == "given"),
                       ("start_step", spec.start_step > 0)):
      _require(not used, name, "needs mixing: set alpha or cutmix_alpha > 0 (both 0 is ERM).")
    return
  if spec.pairing in ("given", "flip", "roll"):
    _require(spec.num_sources == 2, "num_sources",
             f"pairing {spec.pairing!r} gives each row one partner: use num_sources=2, got "
             f"{spec.num_sources}.")
  _require(not spec.global_pairing or spec.pairing == "random", "global_pairing",
           f"draws random partners from the global batch; pairing is {spec.pairing!r}.")
  _require(spec.granularity != "pair" or spec.pairing == "flip", "granularity",
           "'pair' gives rows i and n - 1 - i one lambda; they mix with each other only "
           f"with pairing='flip', got {spec.pairing!r}.")
  _require(not (spec.stages and spec.pairing == "given"), "pairing",
           "'given' (k-NN) partners mix the inputs with a partner batch; it cannot be "
           "combined with stages (the model has no partner activations).")
  if method in ("cutmix", "switch"):
    _require(not spec.stages, "stages",
             "CutMix (cutmix_alpha > 0) pastes into the input images: it cannot mix at "
             "hidden stages.")
    _require(spec.num_sources == 2, "num_sources",
             f"CutMix (cutmix_alpha > 0) pastes one partner's box: use 2, not "
             f"{spec.num_sources}.")
  if method == "switch":
    _require(not spec.global_pairing, "global_pairing",
             "cannot be combined with the mixup / CutMix switch (both alphas > 0).")
  _require(spec.cutmix_minmax is None or method in ("cutmix", "switch"), "cutmix_minmax",
           "shapes CutMix's boxes: set cutmix_alpha > 0 (any value: the sides are drawn "
           "from cutmix_minmax, as in timm).")
  _require(spec.cutmix_minmax is None or spec.area_range is None, "cutmix_minmax",
           "draws the box sides itself: set it or area_range, not both.")
