"""mixup_jax: mixup (Zhang et al., ICLR 2018) for JAX and Flax."""

from mixup_jax.cutmixing import (
    CutMixing,
    apply_cutmix,
    apply_switch,
    cutmix,
    mix_or_cutmix,
    sample_cutmix,
    sample_switch,
)
from mixup_jax.losses import (
    cross_entropy_with_ids,
    mixed_cross_entropy,
    sigmoid_binary_cross_entropy,
    softmax_cross_entropy,
    topk_accuracy,
    topk_correct,
)
from mixup_jax.spec import MixDraw, MixSpec, MixSpecError
from mixup_jax.mixing import (
    Mixing,
    add_gaussian_noise,
    apply_mixing,
    as_target_rows,
    mix,
    mix_targets,
    sample_mixing,
    smooth_labels,
)

__version__ = "0.2.0.dev0"  # setup.py reads it from here; CHANGELOG.md says what changed

__all__ = [
    "CutMixing",
    "MixDraw",
    "MixSpec",
    "MixSpecError",
    "Mixing",
    "apply_cutmix",
    "apply_switch",
    "cutmix",
    "mix_or_cutmix",
    "sample_cutmix",
    "sample_switch",
    "add_gaussian_noise",
    "apply_mixing",
    "as_target_rows",
    "cross_entropy_with_ids",
    "mix",
    "mix_targets",
    "mixed_cross_entropy",
    "sample_mixing",
    "sigmoid_binary_cross_entropy",
    "smooth_labels",
    "softmax_cross_entropy",
    "topk_accuracy",
    "topk_correct",
]
