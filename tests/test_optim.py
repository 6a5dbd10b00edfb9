"""Optimisers against hand-written PyTorch updates; schedules at their boundaries."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from mixup_jax import optim

_PARAMS = {
    "conv": {"kernel": np.linspace(-1.0, 1.0, 12, dtype=np.float32).reshape(3, 4)},
    "bn": {
        "scale": np.array([1.0, 0.5, 2.0], np.float32),
        "bias": np.array([0.1, -0.2, 0.3], np.float32),
    },
}


def _gradients(num_steps: int):
  """Fixed pseudo-random gradients, one tree per step."""
  rng = np.random.default_rng(0)
  return [jax.tree.map(lambda p: rng.normal(size=p.shape).astype(np.float32), _PARAMS)
          for _ in range(num_steps)]


def _run_optax(tx, grads_per_step):
  params = jax.tree.map(jnp.asarray, _PARAMS)
  state = tx.init(params)
  update = jax.jit(tx.update)
  history, rates = [], []
  for grads in grads_per_step:
    updates, state = update(grads, state, params)
    params = optax.apply_updates(params, updates)
    history.append(params)
    rates.append(float(optim.learning_rate_of(state)))
  return history, rates


def _torch_sgd(lrs, momentum, weight_decay, grads_per_step):
  """torch.optim.SGD(dampening=0, nesterov=False), written out in numpy float64."""
  params = jax.tree.map(lambda p: p.astype(np.float64), _PARAMS)
  bufs = None
  history = []
  for lr, grads in zip(lrs, grads_per_step):
    d_p = jax.tree.map(lambda g, p: g + weight_decay * p, grads, params)
    if bufs is None:
      bufs = d_p  # PyTorch: buf = clone(d_p) at the first step
    else:
      bufs = jax.tree.map(lambda b, d: momentum * b + d, bufs, d_p)
    params = jax.tree.map(lambda p, b: p - lr * b, params, bufs)
    history.append(params)
  return history


def _torch_adam(lr, b1, b2, eps, weight_decay, grads_per_step):
  """torch.optim.Adam(amsgrad=False) with L2 weight decay, in numpy float64."""
  params = jax.tree.map(lambda p: p.astype(np.float64), _PARAMS)
  m = jax.tree.map(np.zeros_like, params)
  v = jax.tree.map(np.zeros_like, params)
  history = []
  for t, grads in enumerate(grads_per_step, start=1):
    g = jax.tree.map(lambda g, p: g + weight_decay * p, grads, params)
    m = jax.tree.map(lambda m, g: b1 * m + (1 - b1) * g, m, g)
    v = jax.tree.map(lambda v, g: b2 * v + (1 - b2) * g * g, v, g)
    step = lr / (1 - b1**t)
    denom = jax.tree.map(lambda v: np.sqrt(v) / np.sqrt(1 - b2**t) + eps, v)
    params = jax.tree.map(lambda p, m, d: p - step * m / d, params, m, denom)
    history.append(params)
  return history


def _assert_close_trees(actual, expected, rtol=1e-5, atol=1e-6):
  for a, e in zip(actual, expected):
    jax.tree.map(lambda x, y: np.testing.assert_allclose(x, y, rtol=rtol, atol=atol), a, e)


def test_sgd_matches_pytorch_update_with_weight_decay_on_every_parameter():
  grads = _gradients(5)
  schedule = optim.step_decay_schedule(0.1, (2,), steps_per_epoch=1)  # 0.1, 0.1, then 0.01
  history, rates = _run_optax(optim.sgd(schedule, momentum=0.9, weight_decay=5e-4), grads)
  lrs = [0.1, 0.1, 0.01, 0.01, 0.01]
  _assert_close_trees(history, _torch_sgd(lrs, 0.9, 5e-4, grads))
  np.testing.assert_allclose(rates, lrs, rtol=1e-6)


def test_sgd_weight_decay_is_not_decoupled():
  # With a zero gradient the step is lr * wd * p at step 1 (decay enters momentum).
  zero = [jax.tree.map(np.zeros_like, _PARAMS)] * 2
  history, _ = _run_optax(optim.sgd(0.1, momentum=0.9, weight_decay=0.1), zero)
  expected = _torch_sgd([0.1, 0.1], 0.9, 0.1, zero)
  _assert_close_trees(history, expected)
  # Second step: buf = 0.9 * 0.01 p0 + 0.01 p1, different from decoupled decay.
  kernel0 = _PARAMS["conv"]["kernel"]
  p1 = kernel0 * (1 - 0.01)
  np.testing.assert_allclose(
      history[1]["conv"]["kernel"], p1 - 0.1 * (0.9 * 0.1 * kernel0 + 0.1 * p1), rtol=1e-6
  )


def test_plain_sgd_without_momentum():
  grads = _gradients(3)
  history, _ = _run_optax(optim.sgd(0.05, momentum=0.0, weight_decay=1e-4), grads)
  _assert_close_trees(history, _torch_sgd([0.05] * 3, 0.0, 1e-4, grads))


def test_adam_matches_pytorch_update():
  grads = _gradients(4)
  history, rates = _run_optax(optim.adam(weight_decay=1e-3), grads)
  _assert_close_trees(history, _torch_adam(1e-3, 0.9, 0.999, 1e-8, 1e-3, grads))
  assert rates == pytest.approx([1e-3] * 4)


def test_learning_rate_of_a_foreign_optimizer_is_none():
  assert optim.learning_rate_of(optax.sgd(0.1).init(_PARAMS)) is None


def _rates(schedule, counts):
  return np.asarray([float(schedule(c)) for c in counts])


def test_cifar_schedule_divides_by_ten_at_epochs_100_and_150():
  spe = 391  # 50,000 / 128 rounded up
  s = optim.cifar_schedule(spe)
  counts = [0, 100 * spe - 1, 100 * spe, 150 * spe - 1, 150 * spe, 200 * spe - 1]
  np.testing.assert_allclose(_rates(s, counts), [0.1, 0.1, 0.01, 0.01, 0.001, 0.001], rtol=1e-6)
  shifted = optim.cifar_schedule(spe, shift_epochs=1)
  counts = [101 * spe - 1, 101 * spe, 151 * spe - 1, 151 * spe]
  np.testing.assert_allclose(_rates(shifted, counts), [0.1, 0.01, 0.01, 0.001], rtol=1e-6)


def test_step_schedule_drops_where_pytorch_multisteplr_drops():
  torch = pytest.importorskip("torch")
  parameter = torch.nn.Parameter(torch.zeros(1))
  sgd = torch.optim.SGD([parameter], lr=0.1)
  multistep = torch.optim.lr_scheduler.MultiStepLR(sgd, milestones=[6, 9, 12], gamma=0.1)
  expected = []
  for _ in range(16):  # 3 steps per epoch: epochs 2, 3 and 4 start at counts 6, 9, 12
    expected.append(sgd.param_groups[0]["lr"])
    sgd.step()
    multistep.step()
  ours = optim.step_decay_schedule(0.1, (2, 3, 4), steps_per_epoch=3)
  ours = np.asarray([ours(c) for c in range(16)])
  # The same update counts drop; the rates agree to float32 rounding (PyTorch multiplies
  # in float64, optax in float32: 1 ulp at most).
  np.testing.assert_array_equal(np.diff(ours) != 0, np.diff(expected) != 0)
  np.testing.assert_allclose(ours, expected, rtol=1e-7)


def test_schedule_under_jit_matches_eager():
  s = optim.cifar_schedule(10)
  counts = jnp.arange(0, 2000, 7)
  np.testing.assert_allclose(jax.jit(jax.vmap(s))(counts), _rates(s, np.asarray(counts)), rtol=1e-6)


def test_wrn_schedule():
  s = optim.wrn_schedule(5)
  counts = [0, 299, 300, 599, 600, 899, 900]
  np.testing.assert_allclose(_rates(s, counts), [0.1, 0.1, 0.01, 0.01, 1e-3, 1e-3, 1e-4], rtol=1e-5)


def test_imagenet_schedule_warms_up_linearly_then_steps():
  spe = 10
  s = optim.imagenet_schedule(spe)  # 90 epochs: 30, 60, 80
  counts = [0, 25, 49, 50, 299, 300, 600, 800]
  expected = [0.1, 0.1 + 0.3 * 25 / 50, 0.1 + 0.3 * 49 / 50, 0.4, 0.4, 0.04, 0.004, 4e-4]
  np.testing.assert_allclose(_rates(s, counts), expected, rtol=1e-5)
  long = optim.imagenet_schedule(spe, num_epochs=200)
  np.testing.assert_allclose(
      _rates(long, [599, 600, 1200, 1800]), [0.4, 0.04, 4e-3, 4e-4], rtol=1e-5
  )


def test_speech_schedule_every_ten_epochs():
  s = optim.speech_schedule(3)
  counts = [0, 29, 30, 59, 60, 89]
  np.testing.assert_allclose(
      _rates(s, counts), [3e-3, 3e-3, 3e-4, 3e-4, 3e-5, 3e-5], rtol=1e-5
  )


def test_epochs_to_steps():
  assert optim.epochs_to_steps(5, 510) == 2550


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: optim.sgd(-0.1), "learning_rate"),
        (lambda: optim.sgd(0.1, weight_decay=-1.0), "weight_decay"),
        (lambda: optim.sgd(0.1, momentum=0.0, nesterov=True), "nesterov"),
        (lambda: optim.sgd(0.1, momentum=1.0), "momentum"),
        (lambda: optim.sgd(0.1, momentum=-0.1), "momentum"),
        (lambda: optim.adam(b1=1.0), "b1"),
        (lambda: optim.cifar_schedule(0), "steps_per_epoch"),
        (lambda: optim.step_decay_schedule(0.1, (150, 100), 10), "boundary"),
        (lambda: optim.imagenet_schedule(10, num_epochs=100), "num_epochs"),
        (lambda: optim.warmup_step_decay_schedule(0.4, 0.1, 5, (3,), 10), "warm-up"),
        (lambda: optim.epochs_to_steps(-1, 10), "epochs"),
    ],
)
def test_bad_arguments_raise(build, match):
  with pytest.raises(ValueError, match=match):
    build()


def test_cosine_schedule_warms_up_then_decays_to_the_end():
  s = optim.cosine_schedule(0.1, total_steps=100, warmup_steps=10)
  rates = np.asarray([s(c) for c in (0, 5, 10, 55, 100)])
  np.testing.assert_allclose(rates, [0.0, 0.05, 0.1, 0.05, 0.0], atol=1e-7)
  plain = optim.cosine_schedule(0.1, total_steps=100)
  np.testing.assert_allclose([plain(0), plain(50), plain(100)], [0.1, 0.05, 0.0], atol=1e-7)
  with pytest.raises(ValueError, match="warmup_steps < total_steps"):
    optim.cosine_schedule(0.1, total_steps=10, warmup_steps=10)


def test_config_step_and_cosine_schedules_in_epochs():
  from experiments.configs import default
  from mixup_jax import trainer

  config = default.get_config()
  config.num_epochs = 30
  config.schedule = "step"
  config.schedule_boundaries = (15, 22)
  step = trainer.build_schedule(config, steps_per_epoch=10)
  np.testing.assert_allclose([step(149), step(150), step(219), step(220)],
                             [0.1, 0.01, 0.01, 0.001], rtol=1e-6)
  config.schedule, config.warmup_epochs = "cosine", 2
  cosine = trainer.build_schedule(config, steps_per_epoch=10)
  np.testing.assert_allclose([cosine(0), cosine(20), cosine(300)], [0.0, 0.1, 0.0], atol=1e-7)
  config.schedule, config.schedule_boundaries = "step", ()
  with pytest.raises(trainer.ConfigError, match="schedule_boundaries"):
    trainer.validate_config(config)
  config.schedule_boundaries = (20, 10)
  with pytest.raises(trainer.ConfigError, match="increasing epochs"):
    trainer.validate_config(config)
