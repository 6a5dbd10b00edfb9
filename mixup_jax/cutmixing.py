"""CutMix (Yun et al., ICCV 2019) and the per-batch mixup / CutMix switch.

  x_cut, y_cut = cutmix(rng, images, labels, alpha=1.0, num_classes=10)
  x_mix, y_mix = mix_or_cutmix(rng, images, labels, mixup_alpha=0.8, cutmix_alpha=1.0,
                               switch_prob=0.5, num_classes=10)

CutMix pastes a box of a partner image into each image: lambda ~ Beta(alpha, alpha),
a box of area (1 - lambda) H W (sides sqrt(1 - lambda) H and sqrt(1 - lambda) W, so
non-square images get a box of their own aspect) centred uniformly in the image and
clipped at its border. The targets weigh the two sources by their pixel share: after
clipping, lambda is recomputed from the box that was really pasted
(`correct_lam=True`, the default), so the targets match the pixels exactly.

It is built on the pieces of `mixup_jax.mixing`: `sample_cutmix` returns a
`CutMixing`, whose `.mixing` is an ordinary `Mixing` (partners and the two pixel
shares), so `mix_targets(cut.mixing, y, ...)` gives the targets, and partners,
granularity ("batch", "example", "device"), pairing ("random", "same_class",
"given"), `prob`, `num_groups` and `axis_name` mean exactly what they mean for
`sample_mixing`: one device with num_groups=D draws what D devices draw.
"""

from __future__ import annotations

from typing import Any, Sequence

import flax.struct
import jax
import jax.numpy as jnp

from mixup_jax import _checks
from mixup_jax import mixing as mixing_lib
from mixup_jax.mixing import Granularity, Mixing, Pairing

PyTree = Any

# Sub-streams of the caller's key.
_PAIRS, _CENTRES, _SWITCH, _CUT_WEIGHTS, _SIDES = 0, 1, 2, 3, 4


@flax.struct.dataclass
class CutMixing:
  """Which partner's box is pasted into which image, and the pixel shares.

  Attributes:
    mixing: partners [B, 1] and weights [B, 2] = (own pixel share, partner's);
      pass it to `mix_targets` for the targets.
    boxes: [B, 4] int32 (top, left, bottom, right), half-open pixel rows
      top..bottom-1 and columns left..right-1 taken from the partner; an empty
      box (top == bottom) pastes nothing.
    image_size: (H, W) the boxes were drawn for.
  """

  mixing: Mixing
  boxes: jax.Array
  image_size: tuple[int, int] = flax.struct.field(pytree_node=False)

  @property
  def lam(self) -> jax.Array:
    """[B] float32: each image's own pixel share (or the drawn lambda, uncorrected)."""
    return self.mixing.lam


def _image_size(x: PyTree, argname: str = "x", allow_integer: bool = True) -> tuple[int, int]:
  """(H, W) shared by every leaf of x, each of which must be [B, H, W, C] images.

  Pasting copies pixels, so uint8 images are fine; channels-first batches
  ([B, C, H, W] with C <= 4 < W) are refused, since they would read as height C.
  """
  mixing_lib.batch_size_of(x, argname, allow_integer=allow_integer)
  sizes = {}
  for path, leaf in jax.tree_util.tree_leaves_with_path(x):
    name = argname + jax.tree_util.keystr(path)
    shape = jnp.shape(leaf)
    if len(shape) != 4:
      raise ValueError(
          f"{name} has shape {shape}; CutMix pastes boxes into images, so every "
          "leaf must be [B, H, W, C]. Mix other inputs with mixup_jax.mix.")
    if shape[1] <= 4 < shape[3]:
      raise ValueError(
          f"{name} has shape {shape}, which looks channels-first ([B, C, H, W]); CutMix "
          f"reads [B, H, W, C] and would take height {shape[1]}. Transpose it first: "
          f"{argname}.transpose(0, 2, 3, 1).")
    sizes[name] = tuple(jnp.shape(leaf)[1:3])
  if len(set(sizes.values())) > 1:
    raise ValueError(f"{argname} leaves have different image sizes (H, W): {sizes}.")
  return next(iter(sizes.values()))


def check_range(name: str, value, *, open_low: bool = False) -> tuple[float, float] | None:
  """None, or (min, max) numbers with 0 <= min <= max <= 1 (0 < min < max: open_low)."""
  if value is None:
    return None
  if not (isinstance(value, (tuple, list)) and len(value) == 2
          and all(_checks.is_number(v) for v in value)):
    raise ValueError(f"{name} must be None or (min, max), got {value!r}.")
  low, high = (float(v) for v in value)
  if open_low and not 0.0 < low < high <= 1.0:
    raise ValueError(f"{name} must satisfy 0 < min < max <= 1 (fractions of the image "
                     f"side), got {value!r}.")
  if not 0.0 <= low <= high <= 1.0:
    raise ValueError(f"{name} must satisfy 0 <= min <= max <= 1, got {value!r}.")
  return low, high


def _minmax_boxes(key, minmax, granularity, groups, group_size, group_ids, image_size):
  """[B, 4] boxes as timm's cutmix_minmax: each side uniform in [int(side * min),
  int(side * max)) pixels, placed uniformly wholly inside the image."""
  height, width = image_size
  low_h, high_h = int(height * minmax[0]), int(height * minmax[1])
  low_w, high_w = int(width * minmax[0]), int(width * minmax[1])
  if low_h >= high_h or low_w >= high_w:
    raise ValueError(f"cutmix_minmax={minmax!r} leaves no box side to draw for {height}x"
                     f"{width} images (int(side * min) must be < int(side * max)).")

  def draw(k, n):
    k_h, k_w, k_top, k_left = jax.random.split(k, 4)
    box_h = jax.random.randint(k_h, (n,), low_h, high_h)
    box_w = jax.random.randint(k_w, (n,), low_w, high_w)
    top = jax.random.randint(k_top, (n,), 0, height - box_h + 1)
    left = jax.random.randint(k_left, (n,), 0, width - box_w + 1)
    return jnp.stack([top, left, top + box_h, left + box_w], axis=-1)

  boxes = mixing_lib.draw_at_granularity(key, granularity, groups, group_size, draw,
                                         group_ids)
  return mixing_lib.per_row(boxes, granularity, groups, group_size).astype(jnp.int32)


def boxes_for(lam: jax.Array, centres: jax.Array, image_size: Sequence[int]) -> jax.Array:
  """[B, 4] half-open boxes of area ~(1 - lam) H W around `centres`, clipped.

  Args:
    lam: [B] float32 own shares in [0, 1].
    centres: [B, 2] float32 in [0, 1): the centre's row and column as fractions of H, W.
    image_size: (H, W).
  """
  height, width = image_size
  side = jnp.sqrt(jnp.clip(1.0 - lam, 0.0, 1.0))
  box_h = jnp.round(side * height).astype(jnp.int32)
  box_w = jnp.round(side * width).astype(jnp.int32)
  centre_row = jnp.floor(centres[:, 0] * height).astype(jnp.int32)
  centre_col = jnp.floor(centres[:, 1] * width).astype(jnp.int32)
  top = jnp.clip(centre_row - box_h // 2, 0, height)
  bottom = jnp.clip(centre_row - box_h // 2 + box_h, 0, height)
  left = jnp.clip(centre_col - box_w // 2, 0, width)
  right = jnp.clip(centre_col - box_w // 2 + box_w, 0, width)
  return jnp.stack([top, left, bottom, right], axis=-1)


def pixel_shares(boxes: jax.Array, image_size: Sequence[int]) -> jax.Array:
  """[B, 2] float32: the fraction of each image outside its box, and inside it.

  Each share is one rounding of an exact pixel count (no `1 - share`, which XLA may
  compute differently in different programs), so the shares are bitwise the same
  on one device and on many.
  """
  height, width = image_size
  pasted = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
  counts = jnp.stack([height * width - pasted, pasted], axis=-1)
  return counts.astype(jnp.float32) * jnp.float32(1.0 / (height * width))


def sample_cutmix(
    rng: jax.Array,
    alpha,
    batch_size: int,
    image_size: Sequence[int],
    *,
    granularity: Granularity = "batch",
    pairing: Pairing = "random",
    labels: jax.Array | None = None,
    prob: float = 1.0,
    correct_lam: bool = True,
    area_range: tuple[float, float] | None = None,
    axis_name: str | None = None,
    global_pairing: bool = False,
    num_groups: int = 1,
    cutmix_minmax: tuple[float, float] | None = None,
    sort_weights: bool = False,
) -> CutMixing:
  """Draws partners, boxes and pixel shares for CutMix of one (local) batch.

  Args:
    rng: a JAX key; the same key gives the same CutMixing with and without jit.
    alpha: lambda ~ Beta(alpha, alpha); 0 pastes nothing.
    batch_size: B.
    image_size: (H, W) of the images; any H and W.
    granularity: one box size and centre per "batch", per "example" or per
      "device" / group of rows, as lambda in `sample_mixing`.
    pairing, labels, prob, axis_name, global_pairing, num_groups: as in
      `sample_mixing` (prob: a batch / row / group not mixed pastes nothing).
    correct_lam: recompute lambda from the clipped box (so targets match the
      pixels); False keeps the drawn lambda, as timm's correct_lam=False.
    area_range: (min, max) bounds on the box's area fraction 1 - lambda before
      clipping; None leaves it free in [0, 1].
    cutmix_minmax: timm's option: (min, max) fractions of the image side; each side
      of the box is drawn uniformly from them (not from lambda), the box lies wholly
      inside the image and the shares are its pixel counts. alpha then only says
      whether to cut (> 0), as in timm, which sets it to 1.
    sort_weights: keep at least half of each image (lambda >= 1/2, so the box covers
      at most half), as `sample_mixing`'s option.

  Returns:
    A CutMixing; its `.mixing` holds the partners and the pixel shares.
  """
  if not (isinstance(image_size, (tuple, list)) and len(image_size) == 2
          and all(isinstance(s, int) and s >= 1 for s in image_size)):
    raise ValueError(f"image_size must be (H, W) positive ints, got {image_size!r}.")
  if not isinstance(correct_lam, bool):
    raise ValueError(f"correct_lam must be True or False, got {correct_lam!r}.")
  bounds = check_range("area_range", area_range)
  minmax = check_range("cutmix_minmax", cutmix_minmax, open_low=True)
  if minmax is not None and bounds is not None:
    raise ValueError("cutmix_minmax draws the box sides itself: pass it or area_range, "
                     "not both.")
  base = mixing_lib.sample_mixing(
      jax.random.fold_in(rng, _PAIRS), alpha, batch_size, granularity=granularity,
      pairing=pairing, labels=labels, prob=prob, axis_name=axis_name,
      global_pairing=global_pairing, num_groups=num_groups, sort_weights=sort_weights)
  groups = base.num_groups
  group_size = batch_size // groups
  group_ids = mixing_lib.group_index(axis_name, num_groups)
  drawn = base.lam
  if minmax is not None:
    # Rows that prob (or alpha = 0) leaves alone stay alone; a drawn lambda of 1 is
    # no reason, since the box does not come from it.
    mixed = mixing_lib.mixed_rows(jax.random.fold_in(rng, _PAIRS), alpha, prob, batch_size,
                                  granularity=granularity, axis_name=axis_name,
                                  num_groups=num_groups)
    boxes = _minmax_boxes(jax.random.fold_in(rng, _SIDES), minmax, granularity, groups,
                          group_size, group_ids, tuple(image_size))
    boxes = jnp.where(mixed[:, None], boxes, 0)
    correct_lam = True  # the shares can only come from the box
  else:
    centres = mixing_lib.draw_at_granularity(
        jax.random.fold_in(rng, _CENTRES), granularity, groups, group_size,
        lambda key, n: jax.random.uniform(key, (n, 2)), group_ids)
    centres = mixing_lib.per_row(centres, granularity, groups, group_size)
    if bounds is not None:
      mixed = drawn < 1.0  # rows that prob left alone stay alone
      drawn = jnp.where(mixed, 1.0 - jnp.clip(1.0 - drawn, *bounds), drawn)
    boxes = boxes_for(drawn, centres, tuple(image_size))
  if correct_lam:
    weights = pixel_shares(boxes, image_size)
  else:
    weights = jnp.stack([drawn, 1.0 - drawn], axis=-1)
  weights = jnp.where(jnp.isnan(base.lam)[:, None], jnp.nan, weights)  # stays loud
  return CutMixing(mixing=base.replace(weights=weights), boxes=boxes,
                   image_size=(int(image_size[0]), int(image_size[1])))


def _paste(cut: CutMixing, leaf: jax.Array, source: jax.Array) -> jax.Array:
  """leaf with each row's box replaced by the same box of its partner's row."""
  mixing = cut.mixing
  if mixing.global_axis is not None:
    source = jax.lax.all_gather(source, mixing.global_axis, tiled=True)
  partner = mixing_lib.gather_rows(mixing, source)[:, 0]
  rows = jnp.arange(leaf.shape[1])[None, :, None]
  cols = jnp.arange(leaf.shape[2])[None, None, :]
  top, left, bottom, right = (cut.boxes[:, i][:, None, None] for i in range(4))
  inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
  return jnp.where(inside[..., None], partner.astype(leaf.dtype), leaf)


def apply_cutmix(cut: CutMixing, x: PyTree, partner: PyTree | None = None) -> PyTree:
  """Pastes each row's box from its partner into every [B, H, W, C] leaf of x.

  Every output pixel is a pixel of the image itself or of its partner (never a
  blend), in the leaf's dtype.
  """
  size = _image_size(x, "x")
  if size != cut.image_size:
    raise ValueError(f"x has images of size {size}; the boxes were drawn for {cut.image_size}.")
  batch_size = mixing_lib.batch_size_of(x, "x", allow_integer=True)
  if batch_size != cut.mixing.batch_size:
    raise ValueError(f"x has batch size {batch_size} but the boxes were drawn for "
                     f"{cut.mixing.batch_size}.")
  if cut.mixing.given_partner != (partner is not None):
    raise ValueError('partner must be given exactly when sampled with pairing="given".')
  if partner is None:
    return jax.tree.map(lambda leaf: _paste(cut, leaf, leaf), x)
  if jax.tree.structure(partner) != jax.tree.structure(x) or _image_size(
      partner, "partner") != size:
    raise ValueError("partner must have the structure and image size of x.")
  return jax.tree.map(lambda leaf, p: _paste(cut, leaf, p), x, partner)


def _call_inputs(x: PyTree, y: jax.Array, pairing: str, partner, *,
                 allow_integer: bool) -> tuple:
  """(batch size, (H, W), labels for same-class pairing) of a one-call form's inputs."""
  size = mixing_lib.batch_size_of(x, "x", allow_integer=allow_integer)
  image_size = _image_size(x, "x", allow_integer)
  if jnp.shape(y)[:1] != (size,):
    raise ValueError(f"y has batch size {jnp.shape(y)[:1]} but x has {size}: they must match.")
  if (pairing == "given") != (partner is not None):
    raise ValueError('pass partner=(partner_x, partner_y) exactly when pairing="given".')
  labels = mixing_lib.class_ids(y) if pairing == "same_class" else None
  return size, image_size, labels


def cutmix(
    rng: jax.Array,
    x: PyTree,
    y: jax.Array,
    alpha,
    *,
    num_classes: int | None = None,
    granularity: Granularity = "batch",
    pairing: Pairing = "random",
    partner: tuple[PyTree, jax.Array] | None = None,
    prob: float = 1.0,
    correct_lam: bool = True,
    area_range: tuple[float, float] | None = None,
    label_smoothing: float = 0.0,
    axis_name: str | None = None,
    global_pairing: bool = False,
    num_groups: int = 1,
    cutmix_minmax: tuple[float, float] | None = None,
    sort_weights: bool = False,
    return_cutmix: bool = False,
):
  """CutMix of a batch of images with partners from the same batch (or `partner`).

  Args:
    rng: a JAX key.
    x: [B, H, W, C] images, float or integer (uint8 pixels are pasted, never blended),
      or a pytree of such arrays of one (H, W).
    y: [B] ids (with num_classes), [B, C] rows: as for `mixup_jax.mix`.
    alpha: lambda ~ Beta(alpha, alpha).
    The rest: see `sample_cutmix` and `mixup_jax.mix`. label_smoothing is off
    unless asked for.

  Returns:
    (x_cut, y_cut) or, with return_cutmix, (x_cut, y_cut, cutmixing): what was
    drawn, for logging (`.lam` the pixel shares, `.boxes`).
  """
  size, image_size, labels = _call_inputs(x, y, pairing, partner, allow_integer=True)
  cut = sample_cutmix(
      rng, alpha, size, image_size, granularity=granularity, pairing=pairing, labels=labels,
      prob=prob, correct_lam=correct_lam, area_range=area_range, axis_name=axis_name,
      global_pairing=global_pairing, num_groups=num_groups, cutmix_minmax=cutmix_minmax,
      sort_weights=sort_weights)
  partner_x, partner_y = partner if partner is not None else (None, None)
  x_cut = apply_cutmix(cut, x, partner_x)
  y_cut = mixing_lib.mix_targets(cut.mixing, y, num_classes=num_classes,
                                 label_smoothing=label_smoothing, partner_y=partner_y)
  return (x_cut, y_cut, cut) if return_cutmix else (x_cut, y_cut)


def _switch_probability(mixup_alpha, cutmix_alpha, switch_prob):
  """How likely CutMix is, as timm's Mixup: switch_prob when both methods are on, 1 when
  only CutMix is, 0 when only mixup is (every batch is then mixed by the one that is
  on). With both off nothing is mixed and switch_prob is kept, so the draw is the one
  it always was. Works on traced alphas (the train step's warm-up)."""
  if _checks.is_number(mixup_alpha) and _checks.is_number(cutmix_alpha):
    mix_on, cut_on = mixup_alpha > 0, cutmix_alpha > 0
    return switch_prob if mix_on == cut_on else float(cut_on)
  mix_on, cut_on = jnp.asarray(mixup_alpha) > 0, jnp.asarray(cutmix_alpha) > 0
  return jnp.where(mix_on == cut_on, switch_prob, cut_on.astype(jnp.float32))


def sample_switch(
    rng: jax.Array,
    batch_size: int,
    image_size: Sequence[int],
    *,
    mixup_alpha,
    cutmix_alpha,
    switch_prob: float = 0.5,
    granularity: Granularity = "batch",
    pairing: Pairing = "random",
    labels: jax.Array | None = None,
    prob: float = 1.0,
    correct_lam: bool = True,
    area_range: tuple[float, float] | None = None,
    axis_name: str | None = None,
    num_groups: int = 1,
    cutmix_minmax: tuple[float, float] | None = None,
    sort_weights: bool = False,
) -> tuple[Mixing, CutMixing, jax.Array]:
  """Draws a mixup Mixing, a CutMixing with the same partners, and the choice.

  Returns:
    (mixup, cut, use_cutmix): use_cutmix is [B] bool, drawn with probability
    `switch_prob` once per batch, per row or per group (`granularity`) when both
    alphas are > 0, and always True (False) when only cutmix_alpha (mixup_alpha)
    is, as timm's Mixup; the
    CutMixing's `.mixing` already holds, row by row, the weights of the method
    chosen, so `mix_targets(cut.mixing, y)` gives the targets of the switched batch.
  """
  _checks.check_probability("switch_prob", switch_prob)
  common = dict(granularity=granularity, pairing=pairing, labels=labels, prob=prob,
                axis_name=axis_name, num_groups=num_groups, sort_weights=sort_weights)
  cut = sample_cutmix(rng, cutmix_alpha, batch_size, image_size, correct_lam=correct_lam,
                      area_range=area_range, cutmix_minmax=cutmix_minmax, **common)
  # The mixup weights use the same partners: only the weights are drawn anew.
  mix_weights = mixing_lib.sample_mixing(
      jax.random.fold_in(rng, _CUT_WEIGHTS), mixup_alpha, batch_size, **common).weights
  mixup = cut.mixing.replace(weights=mix_weights)
  groups = cut.mixing.num_groups
  group_size = batch_size // groups
  group_ids = mixing_lib.group_index(axis_name, num_groups)
  cutmix_prob = _switch_probability(mixup_alpha, cutmix_alpha, switch_prob)
  use_cutmix = mixing_lib.draw_at_granularity(
      jax.random.fold_in(rng, _SWITCH), granularity, groups, group_size,
      lambda key, n: jax.random.bernoulli(key, cutmix_prob, (n,)), group_ids)
  use_cutmix = mixing_lib.per_row(use_cutmix, granularity, groups, group_size)
  weights = jnp.where(use_cutmix[:, None], cut.mixing.weights, mix_weights)
  return mixup, cut.replace(mixing=cut.mixing.replace(weights=weights)), use_cutmix


def apply_switch(mixup: Mixing, cut: CutMixing, use_cutmix: jax.Array, x: PyTree,
                 partner: PyTree | None = None) -> PyTree:
  """Row by row, CutMix where `use_cutmix`, else mixup, of the images x."""
  mixed = mixing_lib.apply_mixing(mixup, x, partner)
  pasted = apply_cutmix(cut, x, partner)
  pick = lambda m, p: jnp.where(use_cutmix[:, None, None, None], p, m)
  return jax.tree.map(pick, mixed, pasted)


def mix_or_cutmix(
    rng: jax.Array,
    x: PyTree,
    y: jax.Array,
    *,
    mixup_alpha,
    cutmix_alpha,
    switch_prob: float = 0.5,
    num_classes: int | None = None,
    granularity: Granularity = "batch",
    pairing: Pairing = "random",
    partner: tuple[PyTree, jax.Array] | None = None,
    prob: float = 1.0,
    correct_lam: bool = True,
    area_range: tuple[float, float] | None = None,
    label_smoothing: float = 0.0,
    axis_name: str | None = None,
    num_groups: int = 1,
    cutmix_minmax: tuple[float, float] | None = None,
    sort_weights: bool = False,
    return_switch: bool = False,
):
  """CutMix with probability `switch_prob`, else mixup, per batch / row / group.

  As timm's `Mixup(mixup_alpha, cutmix_alpha, switch_prob)`, with label smoothing
  off unless asked for. Returns (x_mixed, y_mixed) or, with return_switch,
  (x_mixed, y_mixed, (mixup, cut, use_cutmix)) as `sample_switch` drew them:
  `cut.lam` is each row's own share under the method it got, `cut.boxes` the boxes
  (pasted only where `use_cutmix`).
  """
  size, image_size, labels = _call_inputs(x, y, pairing, partner, allow_integer=False)
  mixup, cut, use_cutmix = sample_switch(
      rng, size, image_size, mixup_alpha=mixup_alpha, cutmix_alpha=cutmix_alpha,
      switch_prob=switch_prob, granularity=granularity, pairing=pairing, labels=labels,
      prob=prob, correct_lam=correct_lam, area_range=area_range, axis_name=axis_name,
      num_groups=num_groups, cutmix_minmax=cutmix_minmax, sort_weights=sort_weights)
  partner_x, partner_y = partner if partner is not None else (None, None)
  x_out = apply_switch(mixup, cut, use_cutmix, x, partner_x)
  y_out = mixing_lib.mix_targets(cut.mixing, y, num_classes=num_classes,
                                 label_smoothing=label_smoothing, partner_y=partner_y)
  if return_switch:
    return x_out, y_out, (mixup, cut, use_cutmix)
  return x_out, y_out
