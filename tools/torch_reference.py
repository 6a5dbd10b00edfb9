"""PyTorch versions of the authors' CIFAR networks, to check ours against them.

The paper's CIFAR numbers come from facebookresearch/mixup-cifar10: `ResNet18()` in
`models/resnet.py` and `DenseNet190()` in `models/densenet3.py`, trained by
`train.py` with `torch.optim.SGD`. This module rebuilds those two topologies in
PyTorch (written from their description, module for module, so that a weight
copied from Flax lands in the same place), copies a Flax model's variables into
them, and compares:

  * logits in train mode (batch statistics) and eval mode (running statistics);
  * latent mixing: our `mix_stage=k` against the authors' `forward(x, lin, lout)`
    split at k (run to position k, mix, run on from k);
  * one or more SGD updates of our `make_train_step` against `torch.optim.SGD`.

Run it as a script for the full-size networks on real CIFAR-10 images:

  python tools/torch_reference.py            # PreAct ResNet-18 (width 64)
  python tools/torch_reference.py --densenet # also DenseNet-BC-190 (slow on CPU)

`tests/test_torch_reference.py` runs the same checks on reduced widths.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from typing import Any, Mapping

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# ------------------------------------------------------------------------------
# The authors' topologies.
# ------------------------------------------------------------------------------


class PreActBlock(nn.Module):
  """BN-ReLU-conv3x3-BN-ReLU-conv3x3; the shortcut takes the pre-activated input."""

  def __init__(self, cin: int, cout: int, stride: int):
    super().__init__()
    self.bn1 = nn.BatchNorm2d(cin)
    self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(cout)
    self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
    self.shortcut = None
    if stride != 1 or cin != cout:
      self.shortcut = nn.Conv2d(cin, cout, 1, stride, 0, bias=False)

  def forward(self, x):
    out = F.relu(self.bn1(x))
    shortcut = out if self.shortcut is None else self.shortcut(out)
    out = self.conv2(F.relu(self.bn2(self.conv1(out))))
    return out + shortcut


class PreActResNet18(nn.Module):
  """`ResNet(PreActBlock, [2, 2, 2, 2])` of the authors, at any width.

  `forward(x, lin, lout)` has the authors' meaning: run the pieces lin..lout of
  (0 stem conv-BN-ReLU, 1-4 stages, 5 pool + linear).
  """

  def __init__(self, num_classes: int = 10, width: int = 64, blocks: int = 2):
    super().__init__()
    self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
    self.bn1 = nn.BatchNorm2d(width)
    stages, cin = [], width
    for i, mult in enumerate((1, 2, 4, 8)):
      cout = width * mult
      layer = []
      for j in range(blocks):
        layer.append(PreActBlock(cin, cout, 2 if i > 0 and j == 0 else 1))
        cin = cout
      stages.append(nn.Sequential(*layer))
    self.layers = nn.ModuleList(stages)
    self.linear = nn.Linear(cin, num_classes)

  def forward(self, x, lin: int = 0, lout: int = 5):
    out = x
    if lin < 1 and lout > -1:
      out = F.relu(self.bn1(self.conv1(out)))
    for k, layer in enumerate(self.layers, start=1):
      if lin < k + 1 and lout > k - 1:
        out = layer(out)
    if lout > 4:
      out = F.avg_pool2d(out, out.shape[-1]).flatten(1)
      out = self.linear(out)
    return out


class _Bottleneck(nn.Module):
  """BN-ReLU-conv1x1(4k)-BN-ReLU-conv3x3(k), concatenated after the input."""

  def __init__(self, cin: int, growth: int):
    super().__init__()
    self.bn1 = nn.BatchNorm2d(cin)
    self.conv1 = nn.Conv2d(cin, 4 * growth, 1, bias=False)
    self.bn2 = nn.BatchNorm2d(4 * growth)
    self.conv2 = nn.Conv2d(4 * growth, growth, 3, 1, 1, bias=False)

  def forward(self, x):
    out = self.conv1(F.relu(self.bn1(x)))
    out = self.conv2(F.relu(self.bn2(out)))
    return torch.cat([x, out], 1)


class DenseNetBC(nn.Module):
  """`DenseNet3(depth, growth_rate, reduction=0.5, bottleneck=True)` of the authors."""

  def __init__(self, num_classes: int = 10, depth: int = 190, growth: int = 40):
    super().__init__()
    n = (depth - 4) // 6
    channels = 2 * growth
    self.conv1 = nn.Conv2d(3, channels, 3, 1, 1, bias=False)
    self.blocks, self.transitions = nn.ModuleList(), nn.ModuleList()
    for i in range(3):
      self.blocks.append(nn.Sequential(*[_Bottleneck(channels + j * growth, growth) for j in range(n)]))
      channels += n * growth
      if i < 2:
        out = int(math.floor(channels * 0.5))
        self.transitions.append(
            nn.Sequential(nn.BatchNorm2d(channels), nn.ReLU(), nn.Conv2d(channels, out, 1, bias=False))
        )
        channels = out
    self.bn1 = nn.BatchNorm2d(channels)
    self.fc = nn.Linear(channels, num_classes)

  def forward(self, x):
    out = self.conv1(x)
    for i, block in enumerate(self.blocks):
      out = block(out)
      if i < 2:
        out = F.avg_pool2d(self.transitions[i](out), 2)
    out = F.relu(self.bn1(out))
    out = F.avg_pool2d(out, out.shape[-1]).flatten(1)
    return self.fc(out)


def parameter_count(model: nn.Module) -> int:
  """PyTorch's count: sum(p.numel() for p in model.parameters())."""
  return sum(p.numel() for p in model.parameters())


# ------------------------------------------------------------------------------
# Copying Flax variables into the PyTorch modules.
# ------------------------------------------------------------------------------


def _tensor(value) -> torch.Tensor:
  return torch.from_numpy(np.array(value, np.float32))


def _conv(module: nn.Conv2d, params: Mapping[str, Any]) -> None:
  """Flax HWIO kernel -> PyTorch OIHW weight."""
  module.weight.data.copy_(_tensor(params["kernel"]).permute(3, 2, 0, 1))


def _bn(module: nn.BatchNorm2d, params: Mapping[str, Any], stats: Mapping[str, Any]) -> None:
  module.weight.data.copy_(_tensor(params["scale"]))
  module.bias.data.copy_(_tensor(params["bias"]))
  module.running_mean.copy_(_tensor(stats["mean"]))
  module.running_var.copy_(_tensor(stats["var"]))


def _linear(module: nn.Linear, params: Mapping[str, Any]) -> None:
  module.weight.data.copy_(_tensor(params["kernel"]).T)
  module.bias.data.copy_(_tensor(params["bias"]))


def load_preact_resnet(torch_model: PreActResNet18, variables: Mapping[str, Any]) -> None:
  """Copies a `preact_resnet18` Flax model's variables into the PyTorch network."""
  params, stats = variables["params"], variables["batch_stats"]
  _conv(torch_model.conv1, params["stem"])
  _bn(torch_model.bn1, params["stem_bn"], stats["stem_bn"])
  for i, layer in enumerate(torch_model.layers, start=1):
    for j, block in enumerate(layer, start=1):
      name = f"stage{i}_block{j}"
      p, s = params[name], stats[name]
      _bn(block.bn1, p["bn1"], s["bn1"])
      _conv(block.conv1, p["conv1"])
      _bn(block.bn2, p["bn2"], s["bn2"])
      _conv(block.conv2, p["conv2"])
      if block.shortcut is not None:
        _conv(block.shortcut, p["shortcut"])
      elif "shortcut" in p:
        raise ValueError(f"{name} has a projection shortcut that the reference lacks.")
  _linear(torch_model.linear, params["classifier"])


def load_densenet(torch_model: DenseNetBC, variables: Mapping[str, Any]) -> None:
  """Copies a `densenet_bc190` Flax model's variables into the PyTorch network."""
  params, stats = variables["params"], variables["batch_stats"]
  _conv(torch_model.conv1, params["stem"])
  for i, block in enumerate(torch_model.blocks, start=1):
    for j, layer in enumerate(block, start=1):
      p, s = params[f"block{i}_layer{j}"], stats[f"block{i}_layer{j}"]
      _bn(layer.bn1, p["bn1"], s["bn1"])
      _conv(layer.conv1, p["conv1"])
      _bn(layer.bn2, p["bn2"], s["bn2"])
      _conv(layer.conv2, p["conv2"])
    if i < 3:
      bn, _, conv = torch_model.transitions[i - 1]
      _bn(bn, params[f"transition{i}_bn"], stats[f"transition{i}_bn"])
      _conv(conv, params[f"transition{i}_conv"])
  _bn(torch_model.bn1, params["final_bn"], stats["final_bn"])
  _linear(torch_model.fc, params["classifier"])


def preact_resnet_params_from_torch(torch_model: PreActResNet18, like: Mapping[str, Any]):
  """The PyTorch network's parameters as a Flax `params` tree shaped like `like`."""
  def conv(m):
    return {"kernel": m.weight.detach().permute(2, 3, 1, 0).numpy()}

  def bn(m):
    return {"scale": m.weight.detach().numpy(), "bias": m.bias.detach().numpy()}

  out = {"stem": conv(torch_model.conv1), "stem_bn": bn(torch_model.bn1)}
  for i, layer in enumerate(torch_model.layers, start=1):
    for j, block in enumerate(layer, start=1):
      entry = {"bn1": bn(block.bn1), "conv1": conv(block.conv1), "bn2": bn(block.bn2),
               "conv2": conv(block.conv2)}
      if block.shortcut is not None:
        entry["shortcut"] = conv(block.shortcut)
      out[f"stage{i}_block{j}"] = entry
  out["classifier"] = {"kernel": torch_model.linear.weight.detach().T.numpy(),
                       "bias": torch_model.linear.bias.detach().numpy()}
  if set(out) != set(like):
    raise ValueError(f"parameter names differ: {sorted(set(out) ^ set(like))}")
  return out


# ------------------------------------------------------------------------------
# The checks.
# ------------------------------------------------------------------------------


def nchw(images: np.ndarray) -> torch.Tensor:
  """[B, H, W, C] float -> [B, C, H, W] tensor."""
  return torch.from_numpy(np.ascontiguousarray(np.transpose(images, (0, 3, 1, 2))))


def cifar_images(count: int, data_dir: str | None = None, offset: int = 0):
  """`count` normalised CIFAR-10 test images [B, 32, 32, 3] float32 and their labels."""
  from mixup_jax.data import augment, registry

  path = registry.resolve_data_dir(data_dir, "cifar10") / "test_batch.npz"
  with np.load(path) as data:
    images = data["image"][offset:offset + count]
    labels = data["label"][offset:offset + count].astype(np.int32)
  return np.asarray(augment.cifar_eval(images)), labels


def randomise_batch_stats(variables, seed: int = 0):
  """Non-trivial running statistics, so eval mode tests more than the identity."""
  import jax

  rng = np.random.default_rng(seed)
  def fill(path, leaf):
    name = jax.tree_util.keystr(path)
    if name.endswith("['var']"):
      return rng.uniform(0.5, 2.0, leaf.shape).astype(np.float32)
    return rng.normal(0.0, 0.2, leaf.shape).astype(np.float32)
  stats = jax.tree_util.tree_map_with_path(fill, variables["batch_stats"])
  return {"params": variables["params"], "batch_stats": stats}


def compare_logits(model, torch_model, load, variables, images) -> dict[str, float]:
  """Max |ours - theirs| of the logits in train and eval mode (same weights)."""
  ours_train, _ = model.apply(variables, images, train=True, mutable=["batch_stats"])
  ours_eval = model.apply(variables, images, train=False)
  with torch.no_grad():
    load(torch_model, variables)
    theirs_eval = torch_model.eval()(nchw(images)).numpy()
    theirs_train = torch_model.train()(nchw(images)).numpy()  # updates running stats
  scale = float(np.max(np.abs(theirs_eval)))
  return {
      "train_max_abs_diff": float(np.max(np.abs(np.asarray(ours_train) - theirs_train))),
      "eval_max_abs_diff": float(np.max(np.abs(np.asarray(ours_eval) - theirs_eval))),
      "logit_scale": scale,
  }


def compare_latent_mixing(model, torch_model, variables, images, lam: float = 0.7):
  """Max |ours - theirs| for each mixing position, train and eval mode.

  The authors' manifold mixing: h = forward(x, 0, k - 1) (positions before k),
  h~ = lam * h + (1 - lam) * h[perm], logits = forward(h~, k, 5).
  """
  import jax.numpy as jnp
  from mixup_jax.mixing import Mixing

  batch = images.shape[0]
  perm = np.roll(np.arange(batch), -1)
  mixing = Mixing(
      weights=jnp.tile(jnp.array([[lam, 1.0 - lam]], jnp.float32), (batch, 1)),
      partners=jnp.asarray(perm[:, None], jnp.int32),
  )
  diffs = {}
  for train in (True, False):
    for k in range(6):
      load_preact_resnet(torch_model, variables)  # train mode moves the running stats
      torch_model.train(train)
      kwargs = dict(mixing=mixing, mix_stage=k)
      if train:
        ours, _ = model.apply(variables, images, train=True, mutable=["batch_stats"], **kwargs)
      else:
        ours = model.apply(variables, images, train=False, **kwargs)
      with torch.no_grad():
        h = torch_model(nchw(images), 0, k - 1)
        h = lam * h + (1 - lam) * h[torch.from_numpy(perm)]
        theirs = torch_model(h, k, 5).numpy()
      diffs[f"{'train' if train else 'eval'}_stage{k}"] = float(
          np.max(np.abs(np.asarray(ours) - theirs)))
  return diffs


def torch_sgd_params(torch_model, variables, images, labels, *, steps: int, lr: float,
                     weight_decay: float, torch_dtype, like):
  """The authors' loop body for `steps` ERM updates in `torch_dtype`, from `variables`.

  Returns the parameters in our tree layout (`like`), as float32 NumPy arrays that
  own their memory (the model's tensors are reused by the next call).
  """
  load_preact_resnet(torch_model, variables)
  torch_model.to(torch_dtype).train()
  optimizer = torch.optim.SGD(torch_model.parameters(), lr=lr, momentum=0.9,
                              weight_decay=weight_decay)
  half = images.shape[0] // max(steps, 1)
  for s in range(steps):
    rows = slice(s * half, (s + 1) * half)
    optimizer.zero_grad()
    inputs = nchw(images[rows]).to(torch_dtype)
    loss = F.cross_entropy(torch_model(inputs), torch.from_numpy(labels[rows]).long())
    loss.backward()
    optimizer.step()
  import jax  # pylint: disable=g-import-not-at-top

  params = preact_resnet_params_from_torch(torch_model.float(), like)
  return jax.tree.map(np.array, params)


def torch_float32_drift(torch_model, variables, images, labels, *, steps: int = 2,
                        lr: float = 0.1, weight_decay: float = 5e-4, like) -> float:
  """Max |PyTorch float32 - PyTorch float64| over the parameters after `steps` updates:
  how far this CPU's float32 arithmetic alone moves the authors' own code."""
  import jax

  kwargs = dict(steps=steps, lr=lr, weight_decay=weight_decay, like=like)
  f32 = torch_sgd_params(torch_model, variables, images, labels, torch_dtype=torch.float32, **kwargs)
  f64 = torch_sgd_params(torch_model, variables, images, labels, torch_dtype=torch.float64, **kwargs)
  return max(jax.tree.leaves(jax.tree.map(
      lambda a, b: float(np.max(np.abs(np.asarray(a) - np.asarray(b)))), f32, f64)))


def compare_sgd_steps(model, torch_model, variables, images, labels, *, steps: int = 2,
                      lr: float = 0.1, weight_decay: float = 5e-4,
                      torch_dtype=torch.float64) -> float:
  """Max |ours - theirs| over the parameters after `steps` ERM updates.

  Ours: `make_train_step` with `optim.sgd` (momentum 0.9, weight decay on every
  parameter), in float32. Theirs: the authors' loop body, CrossEntropyLoss +
  torch.optim.SGD, in `torch_dtype`. Both start from the same weights and see the
  same batches. The reference runs in float64 by default: BatchNorm's backward
  pass is ill-conditioned on some small batches, where PyTorch's own float32
  gradient is 1e-4 away from the float64 one, so float32 against float32 would
  measure PyTorch's rounding as much as ours.
  """
  import jax
  from mixup_jax import optim
  from mixup_jax.train import create_train_state, make_train_step

  tx = optim.sgd(lr, momentum=0.9, weight_decay=weight_decay)
  state = create_train_state(jax.random.key(0), model, tx, images[:1])
  state = state.replace(params=variables["params"], batch_stats=variables["batch_stats"])
  num_classes = int(model.num_classes)
  train_step = jax.jit(make_train_step(num_classes=num_classes))
  half = images.shape[0] // max(steps, 1)
  for s in range(steps):
    rows = slice(s * half, (s + 1) * half)
    state, _ = train_step(state, {"image": images[rows], "label": labels[rows]})
  theirs = torch_sgd_params(torch_model, variables, images, labels, steps=steps, lr=lr,
                            weight_decay=weight_decay, torch_dtype=torch_dtype, like=state.params)
  diffs = jax.tree.map(lambda a, b: float(np.max(np.abs(np.asarray(a) - b))),
                       dict(state.params), theirs)
  return max(jax.tree.leaves(diffs))


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--width", type=int, default=64)
  parser.add_argument("--densenet", action="store_true", help="also DenseNet-BC-190 (k = 40)")
  parser.add_argument("--data_dir", default=None)
  args = parser.parse_args(argv)

  import jax
  from mixup_jax import models

  torch.manual_seed(0)
  images, labels = cifar_images(args.batch, args.data_dir)
  model = models.get_model("preact_resnet18", 10, width=args.width)
  variables = model.init(jax.random.key(0), images[:1], train=False)
  variables = randomise_batch_stats(variables)
  reference = PreActResNet18(10, width=args.width)
  ours_count = sum(np.size(p) for p in jax.tree.leaves(variables["params"]))
  print(f"PreAct ResNet-18 width {args.width}: parameters ours {ours_count:,}, "
        f"PyTorch reference {parameter_count(reference):,}")
  print("  logits:", compare_logits(model, reference, load_preact_resnet, variables, images))
  print("  latent mixing:", compare_latent_mixing(model, reference, variables, images))
  for dtype in (torch.float64, torch.float32):
    print(f"  two SGD steps against PyTorch in {dtype}, max |param diff|:",
          compare_sgd_steps(model, PreActResNet18(10, width=args.width), variables, images,
                            labels, torch_dtype=dtype))
  if args.densenet:
    model = models.get_model("densenet_bc190", 10)
    variables = randomise_batch_stats(model.init(jax.random.key(0), images[:1], train=False))
    reference = DenseNetBC(10)
    ours_count = sum(np.size(p) for p in jax.tree.leaves(variables["params"]))
    print(f"DenseNet-BC-190 k=40: parameters ours {ours_count:,}, "
          f"PyTorch reference {parameter_count(reference):,}")
    print("  logits:", compare_logits(model, reference, load_densenet, variables, images[:8]))
  return 0


if __name__ == "__main__":
  sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
  sys.exit(main())
