"""Input pipelines for the paper's datasets (see pipeline.py for the design).

  ds = mixup_jax.data.get_dataset('cifar10')          # offline copy
  ds = mixup_jax.data.get_dataset('cifar10', source='tfds')
  it = mixup_jax.data.train_iterator(ds.train, global_batch_size=128, seed=0)
  images = ds.train_preprocess(rng, next(it)['image'])  # inside the jitted step
  for batch in mixup_jax.data.eval_batches(ds.test, global_batch_size=500): ...

Modules: `pipeline` (the loader), `registry` (names -> datasets), `images`
(CIFAR, ImageNet, MNIST), `augment` (on-device and host augmentation),
`corruption` (Table 2 labels), `neighbors` (Table 5 k-NN partners),
`speech`, `uci`, `toy` (the other datasets).
"""

from mixup_jax.data import augment
from mixup_jax.data import corruption
from mixup_jax.data import neighbors
from mixup_jax.data.pipeline import ArraySource
from mixup_jax.data.pipeline import eval_batches
from mixup_jax.data.pipeline import num_eval_batches
from mixup_jax.data.pipeline import pad_batch
from mixup_jax.data.pipeline import RandomAccessSource
from mixup_jax.data.pipeline import read_array
from mixup_jax.data.pipeline import steps_per_epoch
from mixup_jax.data.pipeline import train_iterator
from mixup_jax.data.pipeline import TrainIterator
from mixup_jax.data.registry import Dataset
from mixup_jax.data.registry import get_dataset
from mixup_jax.data.registry import list_datasets
from mixup_jax.data.registry import register_dataset
from mixup_jax.data.registry import resolve_data_dir
