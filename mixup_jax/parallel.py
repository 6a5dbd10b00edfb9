"""One train step, four ways to run it: one device, pmap, sharded jit, shard_map.

  dp = DataParallel.create("sharded")                     # or "jit", "pmap", "shard_map"
  model = get_model("preact_resnet18", 10, axis_name=dp.axis_name)
  step = dp.compile_train_step(make_train_step(num_classes=10, spec=MixSpec(alpha=1.0),
                                              **dp.step_options))
  state = dp.put_state(create_train_state(rng, model, tx, example))
  state, metrics = step(state, dp.put_batch(host_batch))
  print(dp.get_metrics(metrics))

The modes (all data parallel, parameters replicated, the global batch split by rows):
  "jit":       one device, `jax.jit`.
  "pmap":      `jax.pmap` over this process's devices (each process maps its own;
               the axis spans all): the step runs per device with axis_name
               "data": gradients are pmean'ed and BatchNorm statistics averaged over
               the axis by the model.
  "sharded":   `jax.jit` with `NamedSharding` over a 1-D mesh "data" of all devices:
               the compiler partitions the step; BatchNorm statistics are computed over
               the global batch as on one device. Mixing pairs rows within each
               device's block (num_groups = number of devices), so the gather stays
               local and the choices are those of pmap.
  "shard_map": `jax.jit` of `jax.shard_map` over the same mesh: the step runs per
               device with axis_name "data", as under pmap.
All four compute the same numbers as one device given num_groups = D (tests/
test_parallel.py). "pmap", "sharded" and "shard_map" also span every process of a
`jax.distributed` run (tests/test_multiprocess.py): each process passes its own rows
to `put_batch` (each device's block of rows, or its local devices under pmap) and
`local_rows` says which rows of a global batch those are: they follow the mesh, so
the device order may interleave processes.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Sequence

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P

PyTree = Any
MODES = ("jit", "pmap", "sharded", "shard_map")
AXIS_NAME = "data"


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
  """`jax.distributed.initialize`, with gloo collectives for CPU devices.

  Call it first thing in every process, before any other JAX call. An argument
  left None is detected by JAX from the cluster environment (Cloud TPU, SLURM,
  Open MPI, Kubernetes; the address also from $JAX_COORDINATOR_ADDRESS). On GPU
  and TPU the CPU collectives setting is unused.
  """
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  jax.distributed.initialize(
      coordinator_address=coordinator_address,
      num_processes=num_processes,
      process_id=process_id,
  )


@dataclasses.dataclass(frozen=True)
class DataParallel:
  """How a step is compiled and how states and batches are placed for one mode.

  Attributes:
    mode: one of MODES.
    mesh: 1-D mesh with axis "data" over the devices used (this process's devices
      for "pmap", one device for "jit", all devices otherwise).
  """

  mode: str
  mesh: Mesh

  @classmethod
  def create(cls, mode: str, devices: Sequence[jax.Device] | None = None) -> "DataParallel":
    """The DataParallel of `mode` over `devices` (default: all that the mode uses)."""
    if mode not in MODES:
      raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")
    if mode == "jit" and jax.process_count() > 1:
      # Each process would train its own model on its own rows, never synchronised.
      raise ValueError(
          f'mode "jit" runs on one device of one process, but this run has '
          f"{jax.process_count()} processes: use 'sharded', 'shard_map' or 'pmap'.")
    if devices is None:
      devices = {
          "jit": jax.local_devices()[:1],
          "pmap": jax.local_devices(),
      }.get(mode, jax.devices())
    devices = list(devices)
    if not devices:
      raise ValueError("devices is empty.")
    if mode == "jit" and len(devices) != 1:
      raise ValueError(f'mode "jit" runs on one device, got {len(devices)}.')
    if mode == "pmap" and any(d.process_index != jax.process_index() for d in devices):
      raise ValueError('mode "pmap" maps over this process\'s devices only.')
    mesh = Mesh(np.asarray(devices), (AXIS_NAME,), axis_types=(AxisType.Auto,))
    return cls(mode=mode, mesh=mesh)

  # -- what the step and the model need to know ---------------------------------

  @property
  def axis_name(self) -> str | None:
    """The mapped axis for the model's BatchNorm and for make_train_step."""
    return AXIS_NAME if self.mode in ("pmap", "shard_map") else None

  @property
  def num_devices(self) -> int:
    """D, the number of devices the global batch is split over."""
    if self.mode == "pmap":
      return self.mesh.size * jax.process_count()
    return self.mesh.size

  @property
  def step_options(self) -> dict[str, Any]:
    """make_train_step keywords that make this mode choose what pmap chooses."""
    groups = self.num_devices if self.mode == "sharded" else 1
    return {"axis_name": self.axis_name, "num_groups": groups}

  @property
  def replicated(self) -> NamedSharding:
    return NamedSharding(self.mesh, P())

  @property
  def batch_sharding(self) -> NamedSharding:
    return NamedSharding(self.mesh, P(AXIS_NAME))

  # -- compiling ------------------------------------------------------------------

  def compile_train_step(
      self, train_step: Callable, donate: bool = True
  ) -> Callable[[PyTree, PyTree], tuple[PyTree, PyTree]]:
    """`train_step(state, batch) -> (state, metrics)` compiled for this mode.

    With `donate`, the input state's buffers are reused for the output state: do
    not use a state after passing it in.
    """
    donate_argnums = (0,) if donate else ()
    return self._compile(train_step, donate_argnums, out_is_state=True)

  def compile_eval_step(self, eval_step: Callable) -> Callable[[PyTree, PyTree], PyTree]:
    """`eval_step(state, batch) -> sums` compiled for this mode."""
    return self._compile(eval_step, (), out_is_state=False)

  def _compile(self, fn, donate_argnums, out_is_state):
    if self.mode == "jit":
      return jax.jit(fn, donate_argnums=donate_argnums)
    if self.mode == "pmap":
      # Across processes pmap maps over every process's local devices itself.
      devices = list(self.mesh.devices.flat) if jax.process_count() == 1 else None
      return jax.pmap(fn, axis_name=AXIS_NAME, devices=devices, donate_argnums=donate_argnums)
    out_specs = (P(), P()) if out_is_state else P()
    if self.mode == "shard_map":
      fn = jax.shard_map(
          fn, mesh=self.mesh, in_specs=(P(), P(AXIS_NAME)), out_specs=out_specs
      )
      return jax.jit(fn, donate_argnums=donate_argnums)
    out_shardings = (self.replicated, self.replicated) if out_is_state else self.replicated
    return jax.jit(
        fn,
        in_shardings=(self.replicated, self.batch_sharding),
        out_shardings=out_shardings,
        donate_argnums=donate_argnums,
    )

  # -- placing and fetching -----------------------------------------------------

  def put_state(self, state: PyTree) -> PyTree:
    """Copies a (host or single-device) state onto every device of the mode.

    Under "pmap" every leaf gets a leading axis of size (local devices). In a
    multi-process run every process must pass the same state.
    """
    if self.mode == "jit":
      return jax.device_put(state, self.mesh.devices.flat[0])
    if self.mode == "pmap":
      devices = list(self.mesh.devices.flat)

      def replicate(leaf):
        shards = [jax.device_put(leaf[None], d) for d in devices]
        return jax.make_array_from_single_device_arrays(
            (len(devices),) + leaf.shape, self.batch_sharding, shards
        )

      return jax.tree.map(lambda leaf: _place_host_leaf(leaf, replicate), state)
    return jax.tree.map(
        lambda leaf: _place_host_leaf(
            leaf, lambda host: jax.make_array_from_process_local_data(self.replicated, host)),
        state,
    )

  def put_batch(self, batch: PyTree) -> PyTree:
    """Places this process's rows of the global batch (numpy arrays [B_local, ...]).

    The rows are those `local_rows` names, in its order. "pmap" reshapes every leaf
    to [local devices, B_local / local devices, ...]; "sharded" and "shard_map"
    build global arrays sharded by rows, each device's block taken from the rows
    the mesh gives it, whatever the order of the mesh's devices across processes.
    """
    leaves = jax.tree.leaves(batch)
    rows = {np.shape(leaf)[0] for leaf in leaves}
    if len(rows) != 1:
      raise ValueError(f"batch leaves have different numbers of rows: {sorted(rows)}.")
    local_rows = rows.pop()
    local_devices = len(self.batch_sharding.addressable_devices)
    if local_rows % local_devices:
      raise ValueError(
          f"this process's batch has {local_rows} rows, not divisible by its "
          f"{local_devices} devices; use a global batch size divisible by "
          f"{self.num_devices} (pad eval batches with train.pad_batch)."
      )
    if self.mode == "jit":
      return jax.device_put(batch, self.mesh.devices.flat[0])
    if self.mode == "pmap":
      return jax.tree.map(
          lambda leaf: jax.device_put(
              np.asarray(leaf).reshape((local_devices, -1) + np.shape(leaf)[1:]),
              self.batch_sharding,
          ),
          batch,
      )
    global_rows = local_rows * self.num_devices // local_devices
    positions = self.local_rows(global_rows)
    # Each device's block, as a slice of this process's rows.
    blocks = [(device, slice(offset, offset + block.stop - block.start))
              for device, block in self._device_blocks(global_rows).items()
              for offset in [int(np.searchsorted(positions, block.start))]]

    def place(leaf):
      leaf = np.asarray(leaf)
      shards = [jax.device_put(leaf[rows], device) for device, rows in blocks]
      return jax.make_array_from_single_device_arrays(
          (global_rows,) + leaf.shape[1:], self.batch_sharding, shards)

    return jax.tree.map(place, batch)

  def _device_blocks(self, global_batch_size: int) -> dict[jax.Device, slice]:
    """{this process's device: the rows of a global batch it holds}, in mesh order."""
    index_map = self.batch_sharding.addressable_devices_indices_map((global_batch_size,))
    return {device: slice(index[0].start or 0, index[0].stop or global_batch_size)
            for device, index in index_map.items()}

  def local_rows(self, global_batch_size: int) -> np.ndarray:
    """The rows of a global batch that this process passes to `put_batch`, increasing.

    They follow the mesh: a device at position g of the mesh holds rows
    [g * B / D, (g + 1) * B / D), so a process whose devices are not adjacent in the
    mesh (an interleaved device order) holds several blocks. The loader reads
    exactly these rows (`train_iterator(..., rows=)`), so a run gives the same
    global batches, and the same pairing groups, on 1 process or N.
    """
    if self.mode in ("jit", "pmap") and jax.process_count() == 1:
      return np.arange(global_batch_size)
    if global_batch_size % self.num_devices:
      raise ValueError(
          f"global_batch_size={global_batch_size} is not divisible by "
          f"{self.num_devices} devices."
      )
    if self.mode == "pmap":
      # pmap orders its axis by process: each process holds one contiguous share.
      per_process = global_batch_size // jax.process_count()
      start = jax.process_index() * per_process
      return np.arange(start, start + per_process)
    blocks = sorted(self._device_blocks(global_batch_size).values(), key=lambda b: b.start)
    return np.concatenate([np.arange(b.start, b.stop) for b in blocks])

  def get_state(self, state: PyTree) -> PyTree:
    """One copy of a placed state (drops the pmap device axis); for checkpoints."""
    if self.mode == "pmap":
      return jax.tree.map(lambda leaf: leaf[0], state)
    return state

  def get_metrics(self, metrics: PyTree) -> PyTree:
    """Host numpy values of step outputs (one copy of what every device agrees on)."""
    if self.mode == "pmap":
      return jax.tree.map(lambda leaf: np.asarray(leaf.addressable_data(0))[0], metrics)
    return jax.tree.map(lambda leaf: np.asarray(leaf.addressable_data(0)), metrics)


def _place_host_leaf(leaf, place):
  """`place(numpy copy of leaf)`; typed PRNG keys (`jax.random.key`) travel as key data.

  NumPy cannot hold a typed key, so its raw words are placed and wrapped again with
  the same implementation: a state made with `jax.random.key` or `PRNGKey` alike.
  """
  if jax.dtypes.issubdtype(getattr(leaf, "dtype", None), jax.dtypes.prng_key):
    words = place(np.asarray(jax.random.key_data(leaf)))
    return jax.random.wrap_key_data(words, impl=jax.random.key_impl(leaf))
  return place(np.asarray(leaf))
