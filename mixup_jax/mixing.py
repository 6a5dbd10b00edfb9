"""mixup: convex combinations of examples and of their targets.

The paper's method in one call:

  x_mixed, y_mixed = mix(rng, x, y, alpha=1.0, num_classes=10)

draws lambda ~ Beta(alpha, alpha) in float32, pairs every example with a row of a
random permutation of the same batch, and returns lambda * x_i + (1 - lambda) * x_j
and the same combination of the one-hot targets. Everything the paper's ablation
(Table 5) varies is an option of `mix`; the work is split in three pure steps that
the train step and the models also use directly:

  mixing = sample_mixing(rng, alpha, batch_size, ...)  # who is mixed with whom, how much
  x_mixed = apply_mixing(mixing, x)                     # any pytree, any depth of a model
  y_mixed = mix_targets(mixing, y, num_classes=...)     # soft targets, float32

A `Mixing` is a small pytree (weights [B, K] and partner rows [B, K-1]), so it can
be passed into a model to mix hidden activations (Table 5, "mix labels and latent
representations") with exactly the partner and weight used for the labels.

Randomness: every draw derives from `rng`. Partners are drawn per group of rows
(one group per device under `axis_name`, or `num_groups` contiguous groups on one
device) from `fold_in(rng, group)`, so an 8-device run and a 1-device run with
`num_groups=8` make identical choices.
"""

from __future__ import annotations

import math
from typing import Any, Literal, Sequence

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np

from mixup_jax import _checks

PyTree = Any
Granularity = Literal["batch", "example", "pair", "device"]
Pairing = Literal["random", "same_class", "flip", "roll", "given"]
TargetMode = Literal["mixed", "closest"]

GRANULARITIES = ("batch", "example", "pair", "device")
PAIRINGS = ("random", "same_class", "flip", "roll", "given")
TARGET_MODES = ("mixed", "closest")

# Sub-streams of the caller's key, so adding a draw never shifts the others.
_WEIGHTS, _APPLY, _PARTNERS = 0, 1, 2


@flax.struct.dataclass
class Mixing:
  """Who is mixed with whom, and with which weights.

  Attributes:
    weights: [B, K] float32, rows sum to 1. Column 0 is the weight of the example
      itself (the paper's lambda when K = 2); columns 1.. weigh its partners.
    partners: [B, K-1] int32 row indices, into the local batch, of the partners
      (into the batch gathered over `global_axis` when that is set, or into the
      caller's partner batch when `given_partner`).
    num_groups: rows are paired only within this many contiguous groups, so the
      gather stays local to a shard of the batch.
    global_axis: named axis over which partners were drawn from the whole global
      batch; `apply_mixing` then all-gathers every leaf along it.
    given_partner: partners index a partner batch the caller supplies to
      `apply_mixing` / `mix_targets` (k-nearest-neighbour partners, for example).
  """

  weights: jax.Array
  partners: jax.Array
  num_groups: int = flax.struct.field(pytree_node=False, default=1)
  global_axis: str | None = flax.struct.field(pytree_node=False, default=None)
  given_partner: bool = flax.struct.field(pytree_node=False, default=False)

  @property
  def lam(self) -> jax.Array:
    """[B] float32: each example's own weight (lambda in the paper)."""
    return self.weights[:, 0]

  @property
  def batch_size(self) -> int:
    return self.weights.shape[0]


# ------------------------------------------------------------------------------
# Validation: fail at trace time, naming the argument and the fix.
# ------------------------------------------------------------------------------


def batch_size_of(x: PyTree, argname: str = "x", *, allow_integer: bool = False) -> int:
  """The common leading (batch) dimension of every leaf of `x`.

  Raises ValueError if `x` has no array leaves, a leaf is a scalar, a leaf is not
  floating point (unless `allow_integer`: CutMix pastes pixels, it never blends them),
  or leaves disagree on the batch size.
  """
  leaves = jax.tree_util.tree_leaves_with_path(x)
  if not leaves:
    raise ValueError(f"{argname} has no array leaves to mix.")
  sizes = {}
  for path, leaf in leaves:
    name = argname + jax.tree_util.keystr(path)
    shape, dtype = jnp.shape(leaf), jnp.result_type(leaf)
    if len(shape) == 0:
      raise ValueError(f"{name} is a scalar; every leaf needs a leading batch axis.")
    if not (jnp.issubdtype(dtype, jnp.floating)
            or allow_integer and jnp.issubdtype(dtype, jnp.integer)):
      raise ValueError(
          f"{name} has dtype {dtype}; mixing would round it. Convert it first, e.g. "
          f"`{argname} = {argname}.astype(jnp.float32) / 255.0` for uint8 images."
      )
    sizes[name] = shape[0]
  if len(set(sizes.values())) > 1:
    raise ValueError(f"{argname} leaves have different batch sizes: {sizes}.")
  return next(iter(sizes.values()))


# ------------------------------------------------------------------------------
# Sampling a Mixing.
# ------------------------------------------------------------------------------


# The building blocks below are public so that other mixing methods (CutMix) draw
# their own random parts with exactly the groups and streams of `sample_mixing`.


def group_index(axis_name, num_groups: int) -> jax.Array:
  """[G] int32: the index of each group of rows this call sees."""
  if axis_name is not None:
    return jax.lax.axis_index(axis_name)[None]
  return jnp.arange(num_groups)


def _draw_weights(key, alpha, num_sources: int, shape: Sequence[int]) -> jax.Array:
  """[*shape, K] float32 weights ~ Dirichlet(alpha, ..., alpha): lambda ~ Beta(alpha, alpha) for K = 2.

  alpha = 0 gives weight 1 on the example itself (exact ERM); alpha < 0 or NaN
  (possible only for a traced alpha) gives NaN weights, which the train loop
  reports as a non-finite loss instead of silently training something else.
  """
  alpha = jnp.asarray(alpha, jnp.float32)
  safe_alpha = jnp.where(alpha > 0, alpha, 1.0)
  # Dirichlet normalises K gamma draws in log space, so every weight keeps its full
  # float32 precision near 0; `1 - beta_draw` would round weights below ~6e-8 to 0
  # (for alpha = 0.1 that is ~10 % of the draws).
  concentration = jnp.full((num_sources,), safe_alpha, jnp.float32)
  weights = jax.random.dirichlet(key, concentration, tuple(shape), dtype=jnp.float32)
  no_mixing = jax.nn.one_hot(0, num_sources, dtype=jnp.float32)
  weights = jnp.where(alpha > 0, weights, no_mixing)
  return jnp.where(alpha >= 0, weights, jnp.nan)


def per_row(values: jax.Array, granularity: str, groups: int, group_size: int):
  """Broadcasts [1|G|B, ...] values drawn at `granularity` to one row per example."""
  if granularity == "batch":
    return jnp.broadcast_to(values, (groups * group_size,) + values.shape[1:])
  if granularity == "device":
    return jnp.repeat(values, group_size, axis=0)
  return values


def draw_at_granularity(key, granularity, groups, group_size, draw, group_ids):
  """Draws `draw(key, n)` once per batch, per group, per example, or per pair.

  Returns [1, ...] ("batch"), [G, ...] ("device") or [B, ...] values ("example";
  "pair", where row n - 1 - i of a group gets row i's draw, as timm's pair mode);
  `per_row` broadcasts them to [B, ...].
  """
  if granularity == "batch":
    return draw(key, 1)
  if granularity == "device":
    return jax.vmap(lambda g: draw(jax.random.fold_in(key, g), 1)[0])(group_ids)
  if granularity == "pair":
    def mirrored(g):
      half = draw(jax.random.fold_in(key, g), group_size // 2)
      return jnp.concatenate([half, half[::-1]], axis=0)
    per_group = jax.vmap(mirrored)(group_ids)
    return per_group.reshape((groups * group_size,) + per_group.shape[2:])
  per_group = jax.vmap(lambda g: draw(jax.random.fold_in(key, g), group_size))(group_ids)
  return per_group.reshape((groups * group_size,) + per_group.shape[2:])


def _draw_applied(key, prob, granularity, groups, group_size, group_ids):
  """Whether each batch / group / row is mixed at all; None when prob is 1."""
  if isinstance(prob, (int, float)) and prob == 1.0:
    return None
  return draw_at_granularity(key, granularity, groups, group_size,
                             lambda k, n: jax.random.bernoulli(k, prob, (n,)), group_ids)


def mixed_rows(rng, alpha, prob, batch_size: int, *, granularity: Granularity = "batch",
               axis_name: str | None = None, num_groups: int = 1) -> jax.Array:
  """[B] bool: the rows that `sample_mixing(rng, alpha, batch_size, ...)` mixes at all.

  True where the Bernoulli(prob) draw said yes and alpha > 0 (traced or not), read
  from the same key, so CutMix can leave exactly those rows alone. A row can be
  mixed and still draw lambda = 1 in float32 (often, for alpha < 1): this says
  whether it was mixed, not what it drew.
  """
  groups = num_groups if axis_name is None else 1
  group_size = batch_size // groups
  apply = _draw_applied(jax.random.fold_in(rng, _APPLY), prob, granularity, groups,
                        group_size, group_index(axis_name, num_groups))
  alpha_on = jnp.asarray(alpha) > 0
  if apply is None:
    return jnp.broadcast_to(alpha_on, (batch_size,))
  return per_row(apply, granularity, groups, group_size) & alpha_on


def _same_class_permutation(key, labels: jax.Array) -> jax.Array:
  """A uniformly random permutation that maps every row to a row of its class.

  Sorting by (label, u) with two independent uniform u lists every class as the same
  contiguous run in both orders; matching the two orders position by position is a
  random permutation within each run.
  """
  key_a, key_b = jax.random.split(key)
  order_a = jnp.lexsort((jax.random.uniform(key_a, labels.shape), labels))
  order_b = jnp.lexsort((jax.random.uniform(key_b, labels.shape), labels))
  return jnp.zeros_like(order_a).at[order_a].set(order_b)


def _draw_partners(key, pairing, num_partners, group_ids, group_size, labels):
  """[G * group_size, K-1] int32 partner rows, local to each group."""

  def for_group(g, group_labels):
    group_key = jax.random.fold_in(key, g)
    columns = []
    for j in range(num_partners):
      column_key = jax.random.fold_in(group_key, j)
      if pairing == "same_class":
        perm = _same_class_permutation(column_key, group_labels)
      elif pairing == "flip":  # timm's Mixup: row i with row n - 1 - i
        perm = jnp.arange(group_size)[::-1]
      elif pairing == "roll":  # torchvision's MixUp / CutMix, big_vision: row i with i - 1
        perm = jnp.roll(jnp.arange(group_size), 1)
      else:
        perm = jax.random.permutation(column_key, group_size)
      columns.append(perm)
    return jnp.stack(columns, axis=-1)

  groups = group_ids.shape[0]
  grouped_labels = (
      jnp.zeros((groups, group_size), jnp.int32)
      if labels is None
      else labels.reshape(groups, group_size)
  )
  local = jax.vmap(for_group)(group_ids, grouped_labels)  # [G, group_size, K-1]
  offsets = (jnp.arange(groups) * group_size)[:, None, None]
  return (local + offsets).reshape(groups * group_size, num_partners).astype(jnp.int32)


def _global_partners(key, axis_name, batch_size, num_partners) -> jax.Array:
  """[B, K-1] rows of the gathered global batch: one permutation shared by devices."""
  num_devices = jax.lax.axis_size(axis_name)
  device = jax.lax.axis_index(axis_name)
  columns = []
  for j in range(num_partners):
    perm = jax.random.permutation(jax.random.fold_in(key, j), num_devices * batch_size)
    columns.append(jax.lax.dynamic_slice_in_dim(perm, device * batch_size, batch_size))
  return jnp.stack(columns, axis=-1).astype(jnp.int32)


def sample_mixing(
    rng: jax.Array,
    alpha,
    batch_size: int,
    *,
    granularity: Granularity = "batch",
    pairing: Pairing = "random",
    labels: jax.Array | None = None,
    num_sources: int = 2,
    prob: float = 1.0,
    axis_name: str | None = None,
    global_pairing: bool = False,
    num_groups: int = 1,
    sort_weights: bool = False,
) -> Mixing:
  """Draws the weights and partners for mixing one (local) batch.

  Args:
    rng: a JAX key. The same key gives the same Mixing, with and without jit.
    alpha: Beta/Dirichlet concentration, a Python number or a traced scalar (so a
      sweep can vmap over it). 0 gives weight 1 on the example itself (ERM).
    batch_size: B, the number of rows of the (per-device) batch.
    granularity: "batch" draws one lambda for the whole batch (the paper), "example"
      one per row, "pair" one per pair of rows i and n - 1 - i of a group (timm's
      pair mode; needs pairing="flip", so the two rows of a pair mix with each other
      by the same lambda), "device" one per device (under `axis_name`) or per group
      of rows (`num_groups`). With "batch", every device draws the same lambda.
    pairing: "random" pairs each row with a row of a random permutation; "same_class"
      with a random row of the same class (needs `labels`; Table 5's SC); "given"
      pairs row i with row i of a partner batch the caller supplies later
      (k-nearest-neighbour partners from the input pipeline, for example); "flip"
      and "roll" are the fixed partners of timm (row i with row n - 1 - i) and of
      torchvision and big_vision (row i with row i - 1, row 0 with the last), within
      each group of rows, to compare with runs published with them.
    labels: [B] int class ids, needed for "same_class".
    num_sources: K, the number of examples mixed into each row; K > 2 draws
      Dirichlet(alpha, ..., alpha) weights and K - 1 independent permutations.
    prob: probability of mixing at all, drawn at `granularity`; a row that is not
      mixed keeps weight 1 on itself.
    axis_name: the mapped axis (pmap / shard_map) when called per device. Partners
      then come from `fold_in(rng, device index)`.
    global_pairing: draw partners from the whole batch gathered over `axis_name`
      instead of the local one. Costs an all-gather of every mixed leaf: each device
      receives (D - 1) * B rows and holds D * B. Local pairing (default) moves nothing.
    num_groups: pair rows only within this many contiguous groups of the batch and,
      with granularity "device", draw one lambda per group. A 1-device run with
      num_groups = D makes exactly the choices of a D-device run under `axis_name`,
      and a batch sharded over D devices keeps its gather local.
    sort_weights: sort each row's weights in decreasing order, so that an example
      always keeps the largest share of itself (lambda >= 1/2 for K = 2), as
      big_vision's mixup does; the distribution of the weights is otherwise the same.

  Returns:
    A `Mixing` for a batch of `batch_size` rows.
  """
  _checks.check_concentration("alpha", alpha)
  _checks.check_probability("prob", prob)
  _checks.check_choice("granularity", granularity, GRANULARITIES)
  _checks.check_choice("pairing", pairing, PAIRINGS)
  if not isinstance(sort_weights, bool):
    raise ValueError(f"sort_weights must be True or False, got {sort_weights!r}.")
  if not isinstance(num_sources, int) or num_sources < 2:
    raise ValueError(f"num_sources must be an int >= 2, got {num_sources!r}.")
  if not isinstance(batch_size, int) or batch_size < 1:
    raise ValueError(f"batch_size must be a positive int, got {batch_size!r}.")
  if not isinstance(num_groups, int) or num_groups < 1 or batch_size % num_groups:
    raise ValueError(
        f"num_groups must be a positive int that divides batch_size={batch_size}, "
        f"got {num_groups!r}."
    )
  if axis_name is not None and num_groups != 1:
    raise ValueError("Pass either axis_name (per-device call) or num_groups, not both.")
  if granularity == "device" and axis_name is None and num_groups == 1:
    raise ValueError(
        'granularity="device" needs axis_name (under pmap/shard_map) or num_groups > 1;'
        ' use "batch" for a single device.'
    )
  if global_pairing and axis_name is None:
    raise ValueError("global_pairing=True needs axis_name, the axis to pair across.")
  if global_pairing and pairing != "random":
    raise ValueError(f'global_pairing supports pairing="random" only, got {pairing!r}.')
  if granularity == "pair":
    if pairing != "flip":
      raise ValueError('granularity="pair" gives rows i and n - 1 - i one lambda; they mix '
                       f'with each other only with pairing="flip", got {pairing!r}.')
    groups_of = num_groups if axis_name is None else 1
    if (batch_size // groups_of) % 2:
      raise ValueError(f'granularity="pair" needs an even number of rows per group, got '
                       f"{batch_size // groups_of}.")
  if pairing in ("given", "flip", "roll") and num_sources != 2:
    raise ValueError(f'pairing="{pairing}" mixes each row with one partner: num_sources=2.')
  if pairing == "same_class":
    if labels is None:
      raise ValueError('pairing="same_class" needs labels: [B] integer class ids.')
    if jnp.shape(labels) != (batch_size,) or not jnp.issubdtype(
        jnp.result_type(labels), jnp.integer
    ):
      raise ValueError(
          f"labels must be [batch_size={batch_size}] integer class ids, got shape "
          f"{jnp.shape(labels)} dtype {jnp.result_type(labels)}."
      )

  groups = num_groups if axis_name is None else 1
  group_size = batch_size // groups
  group_ids = group_index(axis_name, num_groups)
  weights_key, apply_key, partners_key = (
      jax.random.fold_in(rng, i) for i in (_WEIGHTS, _APPLY, _PARTNERS)
  )

  def draw_weights(key, n):
    weights = _draw_weights(key, alpha, num_sources, (n,))
    return -jnp.sort(-weights, axis=-1) if sort_weights else weights

  weights = draw_at_granularity(
      weights_key, granularity, groups, group_size, draw_weights, group_ids
  )
  apply = _draw_applied(apply_key, prob, granularity, groups, group_size, group_ids)
  if apply is not None:
    weights = jnp.where(apply[:, None], weights, jax.nn.one_hot(0, num_sources))
  weights = per_row(weights, granularity, groups, group_size)

  num_partners = num_sources - 1
  if pairing == "given":
    partners = jnp.arange(batch_size, dtype=jnp.int32)[:, None]
  elif global_pairing:
    partners = _global_partners(partners_key, axis_name, batch_size, num_partners)
  else:
    partners = _draw_partners(
        partners_key, pairing, num_partners, group_ids, group_size, labels
    )
  return Mixing(
      weights=weights,
      partners=partners,
      num_groups=groups,
      global_axis=axis_name if global_pairing else None,
      given_partner=pairing == "given",
  )


# ------------------------------------------------------------------------------
# Applying a Mixing.
# ------------------------------------------------------------------------------


def gather_rows(mixing: Mixing, source: jax.Array) -> jax.Array:
  """[B, K-1, ...] partner rows of `source`, gathered within each group."""
  if mixing.num_groups == 1:
    return jnp.take(source, mixing.partners, axis=0)
  # Gathering within [G, B/G] blocks keeps the gather local to each shard when the
  # batch axis is sharded G ways.
  groups, size = mixing.num_groups, source.shape[0] // mixing.num_groups
  grouped = source.reshape((groups, size) + source.shape[1:])
  local = (mixing.partners % size).reshape(groups, size, -1)
  rows = jax.vmap(lambda s, i: jnp.take(s, i, axis=0))(grouped, local)
  return rows.reshape((groups * size,) + rows.shape[2:])


def _blend(mixing: Mixing, leaf: jax.Array, source: jax.Array) -> jax.Array:
  """sum_k weights[:, k] * rows_k in float32, returned in the leaf's dtype."""
  if mixing.global_axis is not None:
    source = jax.lax.all_gather(source, mixing.global_axis, tiled=True)
  partner_rows = gather_rows(mixing, source)  # [B, K-1, ...]
  extra = (1,) * (leaf.ndim - 1)
  w = mixing.weights
  mixed = w[:, 0].reshape((-1,) + extra) * leaf.astype(jnp.float32)
  for j in range(w.shape[1] - 1):
    mixed = mixed + w[:, j + 1].reshape((-1,) + extra) * partner_rows[:, j].astype(
        jnp.float32
    )
  return mixed.astype(leaf.dtype)


def apply_mixing(mixing: Mixing, x: PyTree, partner: PyTree | None = None) -> PyTree:
  """Mixes every leaf of `x` with the partners and weights of `mixing`.

  Args:
    mixing: from `sample_mixing` for a batch of the same size.
    x: a pytree of floating arrays with leading batch axis B (images, spectrograms,
      tabular rows, hidden activations); each leaf keeps its dtype (the arithmetic is
      float32).
    partner: the caller's partner batch, same structure as `x`, when the mixing was
      sampled with pairing="given"; must be None otherwise.

  Returns:
    A pytree like `x`: row i = sum_k weights[i, k] * (source row k of example i).
  """
  size = batch_size_of(x, "x")
  if size != mixing.batch_size:
    raise ValueError(
        f"x has batch size {size} but the mixing was sampled for {mixing.batch_size}."
    )
  if mixing.given_partner != (partner is not None):
    raise ValueError(
        "partner must be given exactly when the mixing was sampled with "
        'pairing="given" (it is the batch that row i is mixed with).'
    )
  if partner is None:
    return jax.tree.map(lambda leaf: _blend(mixing, leaf, leaf), x)
  if batch_size_of(partner, "partner") != size:
    raise ValueError("partner must have the same batch size as x.")
  if jax.tree.structure(partner) != jax.tree.structure(x):
    raise ValueError("partner must have the same pytree structure as x.")
  return jax.tree.map(lambda leaf, p: _blend(mixing, leaf, p), x, partner)


# ------------------------------------------------------------------------------
# Targets.
# ------------------------------------------------------------------------------


def smooth_labels(targets: jax.Array, epsilon: float, *, multi_label: bool = False) -> jax.Array:
  """The paper's label smoothing of [B, C] rows: eps/C off target, 1-(C-1)eps/C on.

  Equals (1 - eps) * y + eps / C for one-hot y. With `multi_label` every class is its
  own yes / no target, smoothed towards 1/2: (1 - eps) * y + eps / 2. epsilon = 0
  returns `targets`.
  """
  _checks.check_label_smoothing("label_smoothing", epsilon)
  uniform = 0.5 if multi_label else 1.0 / targets.shape[-1]
  return (1.0 - epsilon) * targets + epsilon * uniform


def as_target_rows(
    y: jax.Array, num_classes: int | None = None, label_smoothing: float = 0.0,
    *, multi_label: bool = False,
) -> jax.Array:
  """Float32 target rows from class ids, one-hot/soft rows, or regression values.

  Args:
    y: [B] integer class ids (needs num_classes), or float [B, C] one-hot / soft
      rows, or float [B] / [B, D] regression targets; with `multi_label`, [B, C]
      multi-hot rows (int, bool or float in [0, 1]).
    num_classes: C for integer ids. Ids outside [0, C) give NaN rows when traced
      (so the loss shows it) and a ValueError when concrete.
    label_smoothing: epsilon of `smooth_labels`; needs class targets.
    multi_label: each class is its own binary target (a sigmoid loss), so rows need
      not sum to 1 and smoothing goes towards 1/2 (timm's multi-label targets).
  """
  y = jnp.asarray(y) if not isinstance(y, jax.Array) else y
  dtype = jnp.result_type(y)
  if multi_label:
    return _multi_label_rows(y, num_classes, label_smoothing)
  if jnp.issubdtype(dtype, jnp.integer) or jnp.issubdtype(dtype, jnp.bool_):
    if num_classes is None:
      raise ValueError(
          "y holds integer class ids: pass num_classes=C (or give one-hot rows)."
      )
    if y.ndim != 1:
      raise ValueError(f"integer y must be [B] class ids, got shape {y.shape}.")
    if not isinstance(y, jax.core.Tracer):
      ids = np.asarray(y)
      if ids.size and (ids.min() < 0 or ids.max() >= num_classes):
        raise ValueError(
            f"y has class ids in [{ids.min()}, {ids.max()}], outside "
            f"[0, num_classes={num_classes}); check num_classes or the labels."
        )
    valid = (y >= 0) & (y < num_classes)
    rows = jax.nn.one_hot(y, num_classes, dtype=jnp.float32)
    rows = jnp.where(valid[:, None], rows, jnp.nan)
  elif jnp.issubdtype(dtype, jnp.floating):
    rows = y.astype(jnp.float32)
    if num_classes is not None and (rows.ndim != 2 or rows.shape[1] != num_classes):
      raise ValueError(
          f"float y of shape {y.shape} does not match num_classes={num_classes}; "
          "pass [B, num_classes] rows, or integer ids."
      )
  else:
    raise ValueError(f"y must be integer class ids or float rows, got dtype {dtype}.")
  if not (isinstance(label_smoothing, (int, float)) and label_smoothing == 0.0):
    if rows.ndim != 2:
      raise ValueError("label_smoothing needs class targets: [B] ids or [B, C] rows.")
    rows = smooth_labels(rows, label_smoothing)
  return rows


def _multi_label_rows(y: jax.Array, num_classes, label_smoothing) -> jax.Array:
  """[B, C] float32 multi-hot rows, checked and smoothed towards 1/2."""
  if jnp.ndim(y) != 2:
    raise ValueError(f"multi-label y must be [B, C] multi-hot rows, got shape {jnp.shape(y)}.")
  if num_classes is not None and jnp.shape(y)[1] != num_classes:
    raise ValueError(f"multi-label y has {jnp.shape(y)[1]} columns, not num_classes="
                     f"{num_classes}.")
  rows = y.astype(jnp.float32)
  if not isinstance(y, jax.core.Tracer):
    values = np.asarray(rows)
    if values.size and (values.min() < 0 or values.max() > 1):
      raise ValueError("multi-label y must hold values in [0, 1] (1: the class is "
                       f"present), got [{values.min()}, {values.max()}].")
  if not (isinstance(label_smoothing, (int, float)) and label_smoothing == 0.0):
    rows = smooth_labels(rows, label_smoothing, multi_label=True)
  return rows


def mix_targets(
    mixing: Mixing,
    y: jax.Array,
    *,
    num_classes: int | None = None,
    mode: TargetMode = "mixed",
    label_smoothing: float = 0.0,
    partner_y: jax.Array | None = None,
    multi_label: bool = False,
) -> jax.Array:
  """The float32 targets that go with `apply_mixing(mixing, x)`.

  Args:
    mixing: the Mixing used for the inputs.
    y: targets, see `as_target_rows`.
    num_classes: C for integer class ids.
    mode: "mixed" (the paper) mixes the target rows with the input weights;
      "closest" takes the target of the source with the largest weight (ties go to
      the example itself): Table 5's "mix inputs only".
    label_smoothing: the paper's smoothing, applied to each row before mixing.
    partner_y: the partner batch's targets for pairing="given".
    multi_label: [B, C] multi-hot targets, smoothed towards 1/2 (see `as_target_rows`).
  """
  _checks.check_choice("mode", mode, TARGET_MODES)
  rows = as_target_rows(y, num_classes, label_smoothing, multi_label=multi_label)
  partner_rows = None
  if partner_y is not None:
    partner_rows = as_target_rows(partner_y, num_classes, label_smoothing,
                                  multi_label=multi_label)
  if rows.shape[0] != mixing.batch_size:
    raise ValueError(
        f"y has batch size {rows.shape[0]} but the mixing was sampled for "
        f"{mixing.batch_size}; x and y must have the same batch size."
    )
  if mode == "closest":
    heaviest = jnp.argmax(mixing.weights, axis=1)
    mixing = mixing.replace(
        weights=jax.nn.one_hot(heaviest, mixing.weights.shape[1], dtype=jnp.float32)
    )
  return apply_mixing(mixing, rows, partner_rows)


# ------------------------------------------------------------------------------
# The one-call form.
# ------------------------------------------------------------------------------


def mix(
    rng: jax.Array,
    x: PyTree,
    y: jax.Array,
    alpha,
    *,
    num_classes: int | None = None,
    granularity: Granularity = "batch",
    pairing: Pairing = "random",
    partner: tuple[PyTree, jax.Array] | None = None,
    num_sources: int = 2,
    targets: TargetMode = "mixed",
    label_smoothing: float = 0.0,
    prob: float = 1.0,
    axis_name: str | None = None,
    global_pairing: bool = False,
    num_groups: int = 1,
    sort_weights: bool = False,
    multi_label: bool = False,
    return_mixing: bool = False,
):
  """mixup of a batch with a permuted copy of itself, inputs and targets alike.

  Args:
    rng: a JAX key.
    x: pytree of floating arrays with a leading batch axis B; all leaves are mixed
      with the same partners and weights and keep their dtype.
    y: [B] int class ids (with num_classes), [B, C] one-hot/soft rows, or float
      regression targets [B] / [B, D].
    alpha: lambda ~ Beta(alpha, alpha); 0 returns x unchanged (ERM). Python float
      or traced scalar.
    num_classes: C, needed for integer class ids.
    granularity, num_sources, prob, axis_name, global_pairing, num_groups,
      sort_weights: see `sample_mixing`.
    pairing: "random", "same_class" (partners share the class of y) or "given"
      (then pass partner=(partner_x, partner_y), row i mixed with row i).
    partner: the caller's partner batch for pairing="given".
    targets: "mixed" (the paper) or "closest" (target of the heavier example).
    label_smoothing: epsilon of the paper's label smoothing; 0 (default) is none.
    multi_label: y is [B, C] multi-hot rows (see `as_target_rows`).
    return_mixing: also return the `Mixing` (for metrics such as mean lambda).

  Returns:
    (x_mixed, y_mixed), or (x_mixed, y_mixed, mixing) with return_mixing. y_mixed
    is float32 [B, C] (or float32 regression targets).
  """
  size = batch_size_of(x, "x")
  if jnp.shape(y)[:1] != (size,):
    raise ValueError(
        f"y has batch size {jnp.shape(y)[:1]} but x has {size}: they must match."
    )
  if (pairing == "given") != (partner is not None):
    raise ValueError('pass partner=(partner_x, partner_y) exactly when pairing="given".')
  labels = None
  if pairing == "same_class":
    labels = class_ids(y)
  mixing = sample_mixing(
      rng, alpha, size,
      granularity=granularity, pairing=pairing, labels=labels,
      num_sources=num_sources, prob=prob, axis_name=axis_name,
      global_pairing=global_pairing, num_groups=num_groups, sort_weights=sort_weights,
  )
  partner_x, partner_y = partner if partner is not None else (None, None)
  x_mixed = apply_mixing(mixing, x, partner_x)
  y_mixed = mix_targets(
      mixing, y, num_classes=num_classes, mode=targets,
      label_smoothing=label_smoothing, partner_y=partner_y, multi_label=multi_label,
  )
  if return_mixing:
    return x_mixed, y_mixed, mixing
  return x_mixed, y_mixed


def class_ids(y: jax.Array) -> jax.Array:
  """[B] int class ids from ids or from one-hot/soft rows (argmax)."""
  dtype = jnp.result_type(y)
  if jnp.issubdtype(dtype, jnp.integer):
    return y
  if jnp.ndim(y) == 2:
    return jnp.argmax(y, axis=-1).astype(jnp.int32)
  raise ValueError('pairing="same_class" needs class targets, not regression values.')


# ------------------------------------------------------------------------------
# The ablation baselines of Table 5.
# ------------------------------------------------------------------------------


def add_gaussian_noise(rng: jax.Array, x: PyTree, sigma: float) -> PyTree:
  """x + N(0, sigma^2) noise on every leaf (Table 5's Gaussian input noise).

  The noise is drawn in float32 and the result keeps each leaf's dtype.
  """
  if isinstance(sigma, (int, float)) and (not math.isfinite(sigma) or sigma < 0):
    raise ValueError(f"sigma must be a finite number >= 0, got {sigma!r}.")
  batch_size_of(x, "x")
  leaves, treedef = jax.tree.flatten(x)
  keys = jax.random.split(rng, len(leaves))
  noisy = [
      (leaf.astype(jnp.float32) + sigma * jax.random.normal(k, leaf.shape)).astype(
          leaf.dtype
      )
      for k, leaf in zip(keys, leaves)
  ]
  return jax.tree.unflatten(treedef, noisy)
