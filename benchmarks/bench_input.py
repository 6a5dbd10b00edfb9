"""Examples/second of the CIFAR-10 input pipeline beside what the jitted step consumes.

  python benchmarks/bench_input.py            # the full table (a few minutes on 2 CPU cores)
  python benchmarks/bench_input.py --quick    # fewer batches, workers 0 and 1 only

Rows: the training pipeline with augmentation on the device (the loader ships
uint8 and the jitted step pads, crops, flips and normalises) or on the host
(Grain transforms ship normalised float32), read in-process (0 workers, two
threads) or by 1 and 2 worker processes; the evaluation pipeline; and the
jitted augmentation alone. Each is shown beside the examples/second of the
jitted step that consumes it (train: augmentation where applicable + mixup
alpha=1 + forward/backward + SGD update; eval: forward), and their ratio:
above 1 the loader keeps up and the step is the bottleneck. Pipeline rates are
measured after a warm-up of a few batches (worker start-up excluded), on the
offline CIFAR-10 in $MIXUP_JAX_DATA_DIR. On a CPU-only host the step and the
loader share the cores, so the two columns are each measured alone.
"""

import argparse
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import mixup_jax as mj
from mixup_jax import data
from mixup_jax import models

BATCH = 128


def _loader_rate(batches, *, warmup: int, count: int) -> float:
  """Examples/second of an iterator of batches, after `warmup` batches."""
  iterator = iter(batches)
  for _ in range(warmup):
    next(iterator)
  start = time.perf_counter()
  examples = sum(len(next(iterator)["label"]) for _ in range(count))
  rate = examples / (time.perf_counter() - start)
  if hasattr(iterator, "close"):
    iterator.close()
  return rate


def _step_rate(step, state, *args, repeats: int) -> float:
  """Examples/second of a jitted `state = step(state, *args)` after compilation."""
  state = jax.block_until_ready(step(state, *args))
  start = time.perf_counter()
  for _ in range(repeats):
    state = step(state, *args)
  jax.block_until_ready(state)
  return BATCH * repeats / (time.perf_counter() - start)


def _call_rate(fn, *args, repeats: int) -> float:
  """Examples/second of independent calls of a jitted `fn(*args)` after compilation."""
  jax.block_until_ready(fn(*args))
  start = time.perf_counter()
  jax.block_until_ready([fn(*args) for _ in range(repeats)])
  return BATCH * repeats / (time.perf_counter() - start)


def _make_steps(model: nn.Module, params, batch_stats):
  """Train steps with device or host augmentation, and the eval step."""
  tx = optax.sgd(0.1, momentum=0.9)

  def train(state, key, images, labels):
    params, batch_stats, opt_state = state
    aug_key, mix_key = jax.random.split(key)
    inputs = data.augment.cifar_train(aug_key, images) if images.dtype == jnp.uint8 else images
    inputs, targets = mj.mix(mix_key, inputs, labels, 1.0, num_classes=10)

    def loss_fn(params):
      logits, updates = model.apply({"params": params, "batch_stats": batch_stats}, inputs,
                                    train=True, mutable=["batch_stats"])
      return mj.softmax_cross_entropy(logits, targets).mean(), updates["batch_stats"]

    grads, new_stats = jax.grad(loss_fn, has_aux=True)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), new_stats, opt_state

  def evaluate(state, images, labels):
    params, batch_stats, _ = state
    logits = model.apply({"params": params, "batch_stats": batch_stats},
                         data.augment.cifar_eval(images), train=False)
    return jnp.sum(jnp.argmax(logits, -1) == labels)

  state = (params, batch_stats, tx.init(params))
  return jax.jit(train), jax.jit(evaluate), state


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--quick", action="store_true", help="fewer batches, workers 0 and 1")
  parser.add_argument("--model", default="cifar_small_cnn", help="a mixup_jax.models name")
  parser.add_argument("--width", type=int, default=32, help="the model's width option")
  args = parser.parse_args()
  count, workers = (40, (0, 1)) if args.quick else (100, (0, 1, 2))

  ds = data.get_dataset("cifar10")
  host = data.get_dataset("cifar10", host_augment=True)
  model = models.get_model(args.model, 10, width=args.width)
  images = ds.train.arrays["image"][:BATCH]
  labels = ds.train.arrays["label"][:BATCH]
  variables = model.init(jax.random.key(0), images.astype(np.float32), train=False)
  train_step, eval_step, state = _make_steps(model, variables["params"], variables["batch_stats"])
  key = jax.random.key(1)
  floats = np.asarray(data.augment.cifar_train(key, images))
  repeats = 5 if args.quick else 20
  step_uint8 = _step_rate(train_step, state, key, images, labels, repeats=repeats)
  step_float = _step_rate(train_step, state, key, floats, labels, repeats=repeats)
  step_eval = _call_rate(eval_step, state, images, labels, repeats=repeats)
  augment_rate = _call_rate(jax.jit(data.augment.cifar_train), key, images, repeats=repeats * 5)

  rows = []
  for worker_count in workers:
    for where, dataset, step in (("device", ds, step_uint8), ("host", host, step_float)):
      it = data.train_iterator(dataset.train, global_batch_size=BATCH, seed=0,
                               worker_count=worker_count, transforms=dataset.train_transforms)
      rate = _loader_rate(it, warmup=10, count=count)
      rows.append((f"train, augment on {where}", worker_count, rate, step))
    batches = data.eval_batches(ds.test, global_batch_size=BATCH, worker_count=worker_count)
    rows.append(("eval", worker_count, _loader_rate(batches, warmup=10, count=min(count, 60)),
                 step_eval))

  print(f"device: {jax.devices()[0].device_kind} x{jax.device_count()}, jax {jax.__version__}, "
        f"model {args.model} width {args.width}, batch {BATCH}")
  header = ("pipeline", "workers", "loader ex/s", "step ex/s", "loader / step")
  print("| " + " | ".join(header) + " |")
  print("|" + "---|" * len(header))
  for name, worker_count, rate, step in rows:
    print(f"| {name} | {worker_count} | {rate:,.0f} | {step:,.0f} | {rate / step:.2f} |")
  print(f"| jitted cifar_train alone (device) | - | {augment_rate:,.0f} | {step_uint8:,.0f} | "
        f"{augment_rate / step_uint8:.2f} |")


if __name__ == "__main__":
  main()
