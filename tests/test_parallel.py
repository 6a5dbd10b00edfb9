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
# Gradient averaging: the library's train step inside the user's own pmap or
# shard_map (with and without JAX's replication checks) against one device.
# ------------------------------------------------------------------------------


def _linear_step_problem():
  """A dense layer, one SGD step at rate 1 on 16 rows: new params = params - grad."""
  import flax.linen as nn
  import optax
  from mixup_jax.train import make_train_step
  from mixup_jax.train_state import create_train_state

  class Linear(nn.Module):
    @nn.compact
    def __call__(self, x, train=False):
      del train
      return nn.Dense(3)(x)

  x = jnp.arange(16 * 5, dtype=jnp.float32).reshape(16, 5) / 40.0
  batch = {"image": x, "label": jnp.arange(16, dtype=jnp.int32) % 3}
  state = create_train_state(jax.random.PRNGKey(0), Linear(), optax.sgd(1.0), x[:1])
  step = lambda axis_name: make_train_step(num_classes=3, axis_name=axis_name,
                                           learning_rate_fn=lambda count: 1.0)
  return state, batch, step


def _params_after(state):
  return np.concatenate([np.ravel(leaf) for leaf in jax.tree.leaves(state.params)])


@pytest.mark.parametrize("check_vma", [True, False])
def test_train_step_in_shard_map_reduces_the_gradient_once(check_vma):
  # With JAX's checks on, replicated parameters get gradients already summed over
  # devices; a further pmean would make the step 8 times too long.
  state, batch, step = _linear_step_problem()
  expected, expected_metrics = jax.jit(step(None))(state, batch)
  mesh = parallel.DataParallel.create("shard_map").mesh
  sharded = jax.tree.map(lambda v: jax.device_put(v, NamedSharding(mesh, P("data"))), batch)
  fn = jax.jit(jax.shard_map(step("data"), mesh=mesh, in_specs=(P(), P("data")),
                             out_specs=(P(), P()), check_vma=check_vma))
  new_state, metrics = fn(state, sharded)
  np.testing.assert_allclose(_params_after(new_state), _params_after(expected), rtol=1e-5,
                             atol=1e-7)
  np.testing.assert_allclose(metrics["grad_norm"], expected_metrics["grad_norm"], rtol=1e-5)


def test_train_step_under_pmap_is_the_global_mean():
  state, batch, step = _linear_step_problem()
  expected, _ = jax.jit(step(None))(state, batch)
  per_device = jax.tree.map(lambda v: v.reshape((8, -1) + v.shape[1:]), batch)
  new_state, _ = jax.pmap(step("data"), axis_name="data", in_axes=(None, 0))(state, per_device)
  for device in range(8):
    replica = jax.tree.map(lambda leaf, d=device: leaf[d], new_state)
    np.testing.assert_allclose(_params_after(replica), _params_after(expected), rtol=1e-5,
                               atol=1e-7)


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
  np.testing.assert_array_equal(sharded_dp.local_rows(16), np.arange(16))
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
