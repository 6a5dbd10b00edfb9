"""Tests of mixing at depth (Table 5) and of BatchNorm statistics across devices.

Reduced networks with variables filled on the host (see test_models.py). A fixed
Mixing (weight 0.7 on the example, 0.3 on the next row) makes every mixed row a
known, non-trivial combination. Training with a stage drawn at random in every
jitted step, gradients included, is tested on real data in test_models_training.py.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from mixup_jax import models
from mixup_jax.mixing import Mixing, apply_mixing
from test_models import _inputs, _jit, _reduced, _variables

BATCH = 4
_LATENT = ["preact_resnet18", "wrn28_10", "densenet_bc190", "resnet50"]


def _fixed_mixing(batch: int = BATCH, lam: float = 0.7) -> Mixing:
  """Row i = lam * row i + (1 - lam) * row i+1 (cyclically)."""
  weights = np.tile(np.array([[lam, 1.0 - lam]], np.float32), (batch, 1))
  partners = np.roll(np.arange(batch, dtype=np.int32), -1)[:, None]
  return Mixing(weights=jnp.asarray(weights), partners=jnp.asarray(partners))


def _setup(name: str, **options):
  model, shape = _reduced(name, **options)
  shape = (BATCH,) + shape[1:]
  return model, _inputs(shape), _variables(model, shape)


def _train_apply(model, variables, x, **kwargs):
  return model.apply(variables, x, train=True, mutable=["batch_stats"], **kwargs)


def test_every_latent_mixing_model_is_listed():
  assert set(_LATENT) <= models.LATENT_MIXING_MODELS
  assert {"preact_resnet18", "wrn28_10", "densenet_bc190"} <= models.LATENT_MIXING_MODELS


@pytest.mark.parametrize("name", _LATENT)
def test_stage_zero_is_the_model_applied_to_the_mixed_input(name):
  # Identical programs (same primitives, same order) give bitwise identical
  # results under any execution mode: compare the traced computations.
  model, x, variables = _setup(name)
  mixing = _fixed_mixing()
  at_zero = jax.make_jaxpr(
      lambda v, x, m: _train_apply(model, v, x, mixing=m, mix_stage=0)
  )(variables, x, mixing)
  on_mixed = jax.make_jaxpr(
      lambda v, x, m: _train_apply(model, v, apply_mixing(m, x))
  )(variables, x, mixing)
  assert str(at_zero) == str(on_mixed)
  # And no mixing at all when mixing is None, whatever the stage.
  none = jax.make_jaxpr(lambda v, x: _train_apply(model, v, x, mixing=None, mix_stage=3))(
      variables, x
  )
  plain = jax.make_jaxpr(lambda v, x: _train_apply(model, v, x))(variables, x)
  assert str(none) == str(plain)


def test_stage_zero_bitwise_numbers():
  model, x, variables = _setup("preact_resnet18")
  mixing = _fixed_mixing()
  at_zero = _jit(lambda v, x, m: _train_apply(model, v, x, mixing=m, mix_stage=0))
  on_mixed = _jit(lambda v, x, m: _train_apply(model, v, apply_mixing(m, x)))
  (a, stats_a), (b, stats_b) = at_zero(variables, x, mixing), on_mixed(variables, x, mixing)
  np.testing.assert_array_equal(a, b)
  jax.tree.map(np.testing.assert_array_equal, stats_a, stats_b)


@pytest.mark.parametrize("name", ["preact_resnet18", "wrn28_10", "densenet_bc190"])
def test_each_stage_mixes_somewhere_different(name):
  model, x, variables = _setup(name)
  mixing, identity = _fixed_mixing(), _fixed_mixing(lam=1.0)

  @_jit
  def train_at(m, stage):
    return _train_apply(model, variables, x, mixing=m, mix_stage=stage)[0]

  stages = models.MIX_STAGES
  base = [train_at(identity, jnp.int32(s)) for s in stages]
  mixed = [train_at(mixing, jnp.int32(s)) for s in stages]
  for s in stages:
    # Mixing with weight 1 on the example itself changes nothing, at any stage.
    np.testing.assert_allclose(base[s], base[0], rtol=1e-5, atol=1e-6)
    assert not np.allclose(mixed[s], base[0], atol=1e-3), f"stage {s} did not mix"
    for t in stages[:s]:
      if (t, s) == (0, 1) and name != "preact_resnet18":
        # A bare bias-free stem conv is a linear map that mixing commutes with:
        # mixing after it is mixing the input, to float rounding.
        np.testing.assert_allclose(mixed[1], mixed[0], rtol=1e-4, atol=1e-5)
      else:
        # In the authors' PreAct ResNet-18 position 1 follows BN-ReLU, so it is
        # a different function from input mixing (Table 5's "layer 1" row).
        assert not np.allclose(mixed[s], mixed[t], atol=1e-4), f"stages {t} and {s} agree"


@pytest.mark.parametrize("name", _LATENT)
def test_eval_mode_stages_zero_and_five(name):
  model, x, variables = _setup(name)
  mixing, identity = _fixed_mixing(), _fixed_mixing(lam=1.0)

  @_jit
  def eval_at(x, m, stage):
    return model.apply(variables, x, train=False, mixing=m, mix_stage=stage)

  logits = eval_at(x, identity, jnp.int32(0))
  # Stage 5 sits before the global pool and the linear layer, which are affine, so
  # mixing there mixes the logits with the same weights.
  np.testing.assert_allclose(
      eval_at(x, mixing, jnp.int32(5)), apply_mixing(mixing, logits), rtol=1e-5, atol=1e-5
  )
  # Stage 0 with a traced stage: the model applied to the mixed input.
  np.testing.assert_allclose(
      eval_at(x, mixing, jnp.int32(0)), eval_at(apply_mixing(mixing, x), identity, jnp.int32(0)),
      rtol=1e-5, atol=1e-6,
  )


def test_traced_stage_equals_static_stage():
  model, x, variables = _setup("preact_resnet18")
  mixing = _fixed_mixing()
  traced = _jit(lambda s: _train_apply(model, variables, x, mixing=mixing, mix_stage=s)[0])
  static = _jit(lambda: _train_apply(model, variables, x, mixing=mixing, mix_stage=3)[0])
  np.testing.assert_allclose(traced(jnp.int32(3)), static(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "mix_stage, match",
    [(6, "one of"), (-1, "one of"), (2.0, "int"), (True, "int"),
     (jnp.float32(1.0), "integer scalar"), (jnp.array([1, 2]), "integer scalar")],
)
def test_bad_mix_stage_raises_at_trace_time(mix_stage, match):
  model, x, variables = _setup("preact_resnet18")
  with pytest.raises(ValueError, match=match):
    jax.eval_shape(
        lambda v, x: _train_apply(model, v, x, mixing=_fixed_mixing(), mix_stage=mix_stage),
        variables, x,
    )


def test_given_partner_mixing_is_rejected_for_latent_mixing():
  model, x, variables = _setup("preact_resnet18")
  given = _fixed_mixing().replace(given_partner=True)  # as pairing="given" samples it
  with pytest.raises(ValueError, match="pairing=\"given\""):
    jax.eval_shape(
        lambda v, x: _train_apply(model, v, x, mixing=given, mix_stage=2), variables, x
    )


def test_axis_name_batch_norm_under_pmap_matches_the_concatenated_batch():
  devices = jax.device_count()
  assert devices == 8
  plain, shape = _reduced("preact_resnet18")
  synced, _ = _reduced("preact_resnet18", axis_name="batch")
  per_device = 2
  x = _inputs((devices * per_device,) + shape[1:])
  xs = x.reshape((devices, per_device) + shape[1:])
  variables = _variables(plain, shape)
  train = lambda model: functools.partial(_train_apply, model)

  out_p, upd_p = jax.pmap(train(synced), axis_name="batch", in_axes=(None, 0))(variables, xs)

  @_jit
  def single_device(v):
    whole = train(plain)(v, x)
    local = jax.vmap(train(plain), in_axes=(None, 0))(v, xs)  # each device on its own
    return whole, local

  (out_1, upd_1), (out_local, _) = single_device(variables)
  np.testing.assert_allclose(out_p.reshape(out_1.shape), out_1, rtol=1e-4, atol=1e-5)
  for synced_leaf, leaf in zip(jax.tree.leaves(upd_p), jax.tree.leaves(upd_1)):
    for d in range(devices):  # every device holds the global statistics
      np.testing.assert_allclose(synced_leaf[d], leaf, rtol=1e-4, atol=1e-6)
  # Without the axis each device normalises its own two examples: different.
  assert not np.allclose(out_local.reshape(out_1.shape), out_1, atol=1e-3)
