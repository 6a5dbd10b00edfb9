"""Our jitted train step beside the authors' PyTorch step: same model, batch, data.

  python benchmarks/bench_vs_pytorch.py                       # PreAct ResNet-18, batch 128
  python benchmarks/bench_vs_pytorch.py --width 16 --repeats 3 --compile

The PyTorch step is the body of the authors' `train.py` loop (facebookresearch/
mixup-cifar10): forward of their `ResNet18()` (rebuilt in tools/torch_reference.py),
CrossEntropyLoss (for mixup: lambda * CE(y_a) + (1 - lambda) * CE(y_b) with
lambda ~ Beta(1, 1) from NumPy and a torch.randperm partner), backward,
torch.optim.SGD(momentum 0.9, weight decay 1e-4). Their augmentation runs in
DataLoader worker processes, outside the step, so their step gets normalised float
images. Ours is timed twice: on the same normalised floats, and as it trains by
default, on uint8 images with the crop, flip and normalisation inside the step.

Every row uses the same CIFAR-10 batch, --threads threads for PyTorch (XLA:CPU uses
one thread per core) and is timed round-robin with the others (median of
--repeats steps after warm-up), so load changes on a shared machine hit all rows
alike. The ratio column is each row's time over PyTorch eager ERM. `--xnnpack` runs
ours with the XNNPACK convolutions that the command lines turn on for CPUs
(experiments/cpu_flags.py); XLA reads its flags once per process, so compare the two
settings by running the script twice.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))


def _parse_args(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--width", type=int, default=64, help="64 is the paper's network")
  parser.add_argument("--blocks", type=int, default=2,
                      help="blocks per stage: 2 is ResNet-18, 1 the CPU-scale variant")
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--threads", type=int, default=os.cpu_count())
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--compile", action="store_true", help="add torch.compile rows")
  parser.add_argument("--json", default=None, help="also write the rows to this file")
  parser.add_argument("--xnnpack", action="store_true",
                      help="XLA:CPU with XNNPACK convolutions, as the command lines run")
  return parser.parse_args(argv)


def _cifar_batch(size: int):
  from mixup_jax.data.registry import resolve_data_dir

  with np.load(resolve_data_dir(None, "cifar10") / "data_batch_1.npz") as arrays:
    return arrays["image"][:size], arrays["label"][:size].astype(np.int32)


def torch_step_fn(width: int, images: np.ndarray, labels: np.ndarray, alpha: float,
                  compile_model: bool, device: str = "cpu", amp: bool = False, blocks: int = 2):
  """One step of the authors' loop body, as a function returning its wall time.

  `images` are uint8; they are normalised once here, as the authors' DataLoader
  workers do outside the step.
  """
  import torch
  import torch.nn.functional as F
  from mixup_jax.data import augment
  from tools import torch_reference

  images = np.asarray(augment.cifar_eval(images))
  net = torch_reference.PreActResNet18(10, width=width, blocks=blocks).to(device).train()
  if device == "cuda":
    net = net.to(memory_format=torch.channels_last)
  optimizer = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
  forward = torch.compile(net) if compile_model else net
  x = torch_reference.nchw(images).to(device)
  y = torch.from_numpy(labels).long().to(device)
  rng = np.random.default_rng(0)

  def step():
    inputs, loss_weights = x, None
    if alpha > 0:
      lam = float(rng.beta(alpha, alpha))
      index = torch.randperm(x.shape[0], device=device)
      inputs = lam * x + (1 - lam) * x[index]
      loss_weights = (lam, index)
    with torch.autocast(device, dtype=torch.bfloat16, enabled=amp):
      out = forward(inputs)
      if loss_weights is None:
        loss = F.cross_entropy(out, y)
      else:
        lam, index = loss_weights
        loss = lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y[index])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    return loss

  def run_once() -> float:
    start = time.perf_counter()
    step()
    if device == "cuda":
      torch.cuda.synchronize()
    return time.perf_counter() - start

  return run_once


def jax_step_fn(width: int, images: np.ndarray, labels: np.ndarray, alpha: float,
                on_device_augment: bool, dtype: str = "float32", donate: bool = True,
                blocks: int = 2, return_parts: bool = False):
  """Our jitted `make_train_step`, as a function returning its wall time.

  With `return_parts`, also the jitted step, the [state, metrics] carry and the
  device batch (for profiling and lowering).
  """
  import jax
  from mixup_jax import optim
  from mixup_jax.data import augment
  from mixup_jax.models import get_model
  from mixup_jax.spec import MixSpec
  from mixup_jax.train import create_train_state, make_train_step

  model = get_model("preact_resnet18", 10, width=width, blocks=blocks, dtype=dtype)
  tx = optim.sgd(0.1, momentum=0.9, weight_decay=1e-4)
  state = create_train_state(jax.random.key(0), model, tx, np.zeros((1, 32, 32, 3), np.float32))
  if on_device_augment:
    batch = {"image": images, "label": labels}
    step = make_train_step(num_classes=10, spec=MixSpec(alpha=alpha),
                           augment_fn=augment.cifar_train)
  else:
    batch = {"image": np.asarray(augment.cifar_eval(images)), "label": labels}
    step = make_train_step(num_classes=10, spec=MixSpec(alpha=alpha))
  step = jax.jit(step, donate_argnums=(0,) if donate else ())
  batch = jax.device_put(batch)
  carry = list(step(state, batch))
  jax.block_until_ready(carry)

  def run_once() -> float:
    start = time.perf_counter()
    carry[:] = step(carry[0], batch)
    jax.block_until_ready(carry)
    return time.perf_counter() - start

  if return_parts:
    return run_once, step, carry, batch
  return run_once


def measure(rows, repeats: int, warmup: int = 1) -> list[tuple[str, float]]:
  """[(name, median seconds)] of each row's step, timed round-robin."""
  for _ in range(warmup):
    for _, run_once in rows:
      run_once()
  times = {name: [] for name, _ in rows}
  for _ in range(repeats):
    for name, run_once in rows:
      times[name].append(run_once())
  return [(name, float(np.median(times[name]))) for name, _ in rows]


def table(results, batch: int, baseline: str) -> str:
  base = dict(results)[baseline]
  lines = ["| step | s / step | img / s | time / " + baseline + " |", "|---|---|---|---|"]
  for name, seconds in results:
    lines.append(f"| {name} | {seconds:.3f} | {batch / seconds:,.0f} | {seconds / base:.2f} |")
  return "\n".join(lines)


def main(argv=None) -> int:
  args = _parse_args(argv)
  if args.xnnpack:  # before JAX is imported (XLA reads its flags once)
    from experiments import cpu_flags
    cpu_flags.use_xnnpack()
  import jax
  import torch

  torch.set_num_threads(args.threads)
  images, labels = _cifar_batch(args.batch)
  rows = []
  for alpha, tag in ((0.0, "ERM"), (1.0, "mixup")):
    rows.append((f"PyTorch eager, {tag}", torch_step_fn(args.width, images, labels, alpha, False,
                                                            blocks=args.blocks)))
    if args.compile:
      rows.append((f"PyTorch compile, {tag}",
                   torch_step_fn(args.width, images, labels, alpha, True,
                                                 blocks=args.blocks)))
    rows.append((f"ours, float inputs, {tag}",
                 jax_step_fn(args.width, images, labels, alpha, on_device_augment=False,
                             blocks=args.blocks)))
    rows.append((f"ours, uint8 + augment in step, {tag}",
                 jax_step_fn(args.width, images, labels, alpha, on_device_augment=True,
                             blocks=args.blocks)))
  results = measure(rows, args.repeats)
  print(f"PreAct ResNet width {args.width}, {args.blocks} blocks per stage, batch {args.batch}, {args.threads} threads, "
        f"jax {jax.__version__} ({jax.devices()[0].platform}), torch {torch.__version__}, "
        f"median of {args.repeats}")
  print(table(results, args.batch, "PyTorch eager, ERM"))
  if args.json:
    import json
    pathlib.Path(args.json).write_text(json.dumps(dict(results), indent=1))
  return 0


if __name__ == "__main__":
  sys.exit(main())
