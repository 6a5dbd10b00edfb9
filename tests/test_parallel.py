"""The same train and eval steps under jit, pmap, sharded jit and shard_map on 8 devices.

The 1-device run (num_groups=8) is the reference; every 8-device mode must give the
same parameters, BatchNorm statistics, metrics and eval sums to float tolerance. A
gradient reduced twice (the trap of shard_map with replicated parameters) or BatchNorm
statistics left per device would be far outside it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

import parallel_scenario as scenario
from mixup_jax import parallel
from mixup_jax.train import _mean_over_devices

# Reductions in a different order: float32 rounding only.
RTOL, ATOL = 2e-5, 2e-6


@pytest.fixture(scope="module")
def reference(data_dir):
  return scenario.run("jit", data_dir)


def _assert_same_run(actual: dict, expected: dict) -> None:
  flat_actual, flat_expected = scenario.flatten(actual), scenario.flatten(expected)
  assert flat_actual.keys() == flat_expected.keys()
  for name, value in flat_expected.items():
    np.testing.assert_allclose(flat_actual[name], value, rtol=RTOL, atol=ATOL, err_msg=name)


@pytest.mark.parametrize("mode", ["pmap", "sharded", "shard_map"])
def test_eight_devices_match_one_device(mode, reference, data_dir):
  result = scenario.run(mode, data_dir)
  _assert_same_run(result, reference)
  # The run really trained and evaluated: lambda varies, every eval row counted once.
  assert 0.0 < reference["metrics"]["lambda"][0] < 1.0
  assert float(result["eval"]["count"]) == scenario.EVAL_ROWS


# ------------------------------------------------------------------------------
# Gradient averaging, on a linear loss where the right answer is known exactly.
# ------------------------------------------------------------------------------


def _linear_problem():
  w = jnp.asarray([1.0, -2.0, 0.5])
  x = jnp.arange(8 * 2 * 3, dtype=jnp.float32).reshape(16, 3) / 10.0
  loss = lambda w, x: jnp.mean((x @ w) ** 2)
  return w, x, loss, jax.grad(loss)(w, x)


def _per_device_gradient(loss, varying_params=False):
  def fn(w, x):
    if varying_params:
      w = jax.lax.pcast(w, "data", to="varying")
    return _mean_over_devices(jax.grad(loss)(w, x), "data", x)

  return fn


@pytest.mark.parametrize("check_vma", [True, False])
@pytest.mark.parametrize("varying_params", [False, True])
def test_shard_map_gradient_is_the_global_mean_reduced_once(check_vma, varying_params):
  if varying_params and not check_vma:
    pytest.skip("without type tracking parameters are never marked varying")
  w, x, loss, expected = _linear_problem()
  mesh = parallel.DataParallel.create("shard_map").mesh
  x = jax.device_put(x, NamedSharding(mesh, P("data")))
  fn = jax.jit(
      jax.shard_map(
          _per_device_gradient(loss, varying_params), mesh=mesh,
          in_specs=(P(), P("data")), out_specs=P(), check_vma=check_vma,
      )
  )
  np.testing.assert_allclose(fn(w, x), expected, rtol=1e-6)
  # One all-reduce of the gradient: a second pmean would only add traffic.
  hlo = fn.lower(w, x).compile().as_text()
  assert hlo.count("all-reduce(") + hlo.count("all-reduce-start(") == 1, hlo


def test_pmap_gradient_is_the_global_mean():
  w, x, loss, expected = _linear_problem()
  fn = jax.pmap(_per_device_gradient(loss), axis_name="data", in_axes=(None, 0))
  grads = fn(w, x.reshape(8, 2, 3))
  np.testing.assert_allclose(grads, np.broadcast_to(expected, (8, 3)), rtol=1e-6)


# ------------------------------------------------------------------------------
# Placing batches.
# ------------------------------------------------------------------------------


def test_put_batch_shapes_and_errors():
  batch = {"image": np.zeros((16, 2), np.float32), "label": np.arange(16, dtype=np.int32)}
  pmap_dp = parallel.DataParallel.create("pmap")
  assert pmap_dp.put_batch(batch)["image"].shape == (8, 2, 2)
  sharded_dp = parallel.DataParallel.create("sharded")
  placed = sharded_dp.put_batch(batch)
  assert placed["label"].shape == (16,)
  assert placed["label"].sharding.is_equivalent_to(sharded_dp.batch_sharding, 1)
  assert sharded_dp.local_rows(16) == slice(0, 16)
  assert sharded_dp.step_options == {"axis_name": None, "num_groups": 8}
  assert pmap_dp.step_options == {"axis_name": "data", "num_groups": 1}
  with pytest.raises(ValueError, match="divisible"):
    sharded_dp.put_batch({"image": np.zeros((12, 2), np.float32)})
  with pytest.raises(ValueError, match="mode"):
    parallel.DataParallel.create("ddp")
  with pytest.raises(ValueError, match="one device"):
    parallel.DataParallel.create("jit", jax.devices()[:2])


@pytest.mark.parametrize("mode", ["pmap", "sharded", "shard_map"])
def test_a_subset_of_devices(mode):
  dp = parallel.DataParallel.create(mode, jax.devices()[:4])
  assert dp.num_devices == 4
  count = lambda state, batch: {"sum": state["scale"] * batch["x"].sum()}
  if dp.axis_name is not None:
    per_device = count
    count = lambda state, batch: jax.lax.psum(per_device(state, batch), dp.axis_name)
  sums = dp.compile_eval_step(count)(
      dp.put_state({"scale": np.float32(2.0)}), dp.put_batch({"x": np.arange(8, dtype=np.float32)})
  )
  assert float(dp.get_metrics(sums)["sum"]) == 2.0 * 28


@pytest.mark.parametrize("mode", ["jit", "pmap", "sharded", "shard_map"])
def test_put_state_keeps_typed_and_raw_keys(mode):
  """A state holding a `jax.random.key` places like one holding a `PRNGKey`."""
  dp = parallel.DataParallel.create(mode)
  state = {"typed": jax.random.key(3), "raw": jax.random.PRNGKey(3), "w": np.ones(2, np.float32)}
  placed = dp.get_state(dp.put_state(state))
  assert jax.dtypes.issubdtype(placed["typed"].dtype, jax.dtypes.prng_key)
  np.testing.assert_array_equal(jax.random.key_data(placed["typed"]),
                                jax.random.key_data(state["typed"]))
  np.testing.assert_array_equal(placed["raw"], state["raw"])
  # The placed key draws what the host key draws.
  np.testing.assert_array_equal(jax.random.uniform(placed["typed"], (3,)),
                                jax.random.uniform(state["typed"], (3,)))


def test_gradient_rule_refuses_to_guess_without_vma_information(monkeypatch):
  # If JAX stops exposing which axes a value varies over, the shard_map gradient
  # would silently be D times too large or reduced twice: fail at trace time.
  import types
  from mixup_jax import train as train_lib

  monkeypatch.setattr(jax, "typeof", lambda x: types.SimpleNamespace(shape=np.shape(x)))
  with pytest.raises(RuntimeError, match="vma"):
    train_lib._mean_over_devices({"w": np.ones(3)}, "data", np.ones(3))
