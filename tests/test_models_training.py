"""The models learn from real data: short runs on the offline CIFAR-10 and MNIST.

Each run is a few dozen Adam steps with mixup on a small real subset, then top-1
accuracy on held-out real images, which must be far above chance. The variables
are initialised with the "unsafe_rbg" key implementation, whose random bits compile
in a fraction of threefry's time on CPU (the initialisers are the same), and steps
are compiled without LLVM optimisations (`_jit`), which saves more compile time
than the slower code costs in a few dozen steps.
"""

import functools
import gzip
import pathlib

import jax
import numpy as np
import optax

from mixup_jax.mixing import apply_mixing, mix_targets, sample_mixing
from mixup_jax.models import MIX_STAGES, get_model
from test_models import _jit

_CIFAR_MEAN = np.array([0.4914, 0.4822, 0.4465], np.float32)
_CIFAR_STD = np.array([0.2023, 0.1994, 0.2010], np.float32)


def _cifar10(data_dir: pathlib.Path, train_size: int, test_size: int):
  """Normalised [N, 32, 32, 3] float32 images and int32 labels (paper constants)."""
  def load(name, size):
    arrays = np.load(data_dir / "cifar10" / name)
    images = (arrays["image"][:size].astype(np.float32) / 255.0 - _CIFAR_MEAN) / _CIFAR_STD
    return images, arrays["label"][:size].astype(np.int32)
  return load("data_batch_1.npz", train_size), load("test_batch.npz", test_size)


def _mnist_test_set(data_dir: pathlib.Path):
  """The 10,000 official MNIST test images [N, 28, 28, 1] (normalised) and labels."""
  with gzip.open(data_dir / "mnist" / "t10k-images-idx3-ubyte.gz") as f:
    images = np.frombuffer(f.read(), np.uint8, offset=16).reshape(-1, 28, 28, 1)
  with gzip.open(data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz") as f:
    labels = np.frombuffer(f.read(), np.uint8, offset=8)
  return (images.astype(np.float32) / 255.0 - 0.1307) / 0.3081, labels.astype(np.int32)


def _train_and_test(model, train_set, test_set, *, steps, batch, alpha, latent):
  """Adam with mixup (at a random stage per step when `latent`); held-out accuracy."""
  (x_train, y_train), (x_test, y_test) = train_set, test_set
  init = _jit(functools.partial(model.init, train=False))
  variables = init(jax.random.key(0, impl="unsafe_rbg"), x_train[:1])
  params, state = variables["params"], {k: v for k, v in variables.items() if k != "params"}
  tx = optax.adam(3e-3)
  opt_state = tx.init(params)

  @_jit
  def step(params, state, opt_state, x, y, key):
    mix_key, stage_key = jax.random.split(key)
    mixing = sample_mixing(mix_key, alpha, x.shape[0])
    targets = mix_targets(mixing, y, num_classes=10)
    stage = jax.random.randint(stage_key, (), 0, len(MIX_STAGES))
    if latent:
      kwargs = dict(mixing=mixing, mix_stage=stage)
    else:
      x, kwargs = apply_mixing(mixing, x), {}

    def loss_fn(params):
      logits, updates = model.apply(
          {"params": params, **state}, x, train=True, mutable=list(state), **kwargs
      )
      return optax.softmax_cross_entropy(logits, targets).mean(), updates

    (loss, updates), grads = jax.value_and_grad(loss_fn, has_aux=True)(params)
    changes, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, changes), {**state, **updates}, opt_state, loss, stage

  order = np.random.default_rng(0).permutation(steps * batch) % len(x_train)
  losses, stages = [], set()
  for i in range(steps):
    rows = order[i * batch:(i + 1) * batch]
    params, state, opt_state, loss, stage = step(
        params, state, opt_state, x_train[rows], y_train[rows], jax.random.key(i)
    )
    losses.append(float(loss))
    stages.add(int(stage))
  assert np.all(np.isfinite(losses))
  predict = _jit(lambda x: model.apply({"params": params, **state}, x, train=False))
  predictions = np.asarray(predict(x_test)).argmax(-1)
  return float(np.mean(predictions == y_test)), losses, stages


def test_scaled_preact_resnet_learns_cifar10_with_latent_mixing(full_data_dir):
  train_set, test_set = _cifar10(full_data_dir, train_size=2560, test_size=1000)
  model = get_model("preact_resnet18", 10, width=8, blocks=1)
  accuracy, losses, stages = _train_and_test(
      model, train_set, test_set, steps=40, batch=64, alpha=0.2, latent=True
  )
  assert len(stages) >= 4, stages  # a stage drawn per step, inside the jitted step
  # Chance is 10 %; this short run reaches 28.8 % here.
  assert accuracy > 0.2, accuracy
  assert np.mean(losses[-10:]) < np.mean(losses[:10])


def test_mnist_cnn_learns_mnist(full_data_dir):
  images, labels = _mnist_test_set(full_data_dir)
  model = get_model("mnist_cnn", 10, width=8)
  accuracy, _, _ = _train_and_test(
      model, (images[:2000], labels[:2000]), (images[8000:], labels[8000:]),
      steps=30, batch=64, alpha=0.2, latent=False,
  )
  # Chance is 10 %; this short run reaches 82.8 % here.
  assert accuracy > 0.7, accuracy
