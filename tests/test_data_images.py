"""CIFAR-10/100, MNIST on the real offline data; CIFAR and ImageNet through mocked TFDS."""

import hashlib

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from mixup_jax import data

# sha256 of the raw arrays, from the data directory's PROVENANCE.md.
_CIFAR10_SHA256 = {
    ("train", "image"): "47af8b02cfcfb6cdf3dbbd1969ad7f1b70f4413f6f80f437b020ee4e5bc8304a",
    ("train", "label"): "2b7cd2f24487317614016b72ffd53071c3062f592f0eb300c18a770d41ae1253",
    ("test", "image"): "f9b1e2130bab680db56eb06d886f7f1ad0f1183907ceff4659d1735c890f5b04",
    ("test", "label"): "cec8a24a1e92aa2ecaa0bbd3dbfa86bf6cd8759fbd209a832824c8cf0afca9d5",
}
# MNIST official test labels per class, from PROVENANCE.md.
_MNIST_TEST_PER_CLASS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_cifar10_offline_is_the_complete_official_dataset(full_data_dir):
  ds = data.get_dataset("cifar10", data_dir=full_data_dir)
  assert (ds.num_train, ds.num_test, ds.num_classes, ds.input_shape) == (50000, 10000, 10, (32, 32, 3))
  for split in ("train", "test"):
    arrays = getattr(ds, split).arrays
    assert arrays["image"].dtype == np.uint8 and arrays["image"].shape[1:] == (32, 32, 3)
    assert arrays["label"].dtype == np.int32
    # The label arrays were hashed as uint8, as published.
    hashed = {"image": arrays["image"], "label": arrays["label"].astype(np.uint8)}
    for key, value in hashed.items():
      assert hashlib.sha256(value.tobytes()).hexdigest() == _CIFAR10_SHA256[(split, key)]
  assert np.bincount(ds.train.arrays["label"]).tolist() == [5000] * 10
  assert np.bincount(ds.test.arrays["label"]).tolist() == [1000] * 10
  assert ds.info["classes"][0] == "airplane" and len(ds.info["classes"]) == 10


@pytest.mark.parametrize("label, num_classes", [("fine", 100), ("coarse", 20)])
def test_cifar100_offline_subset(full_data_dir, label, num_classes):
  ds = data.get_dataset("cifar100", data_dir=full_data_dir, label=label)
  assert (ds.num_train, ds.num_test, ds.num_classes) == (486, 916, num_classes)
  assert len(ds.info["classes"]) == num_classes
  labels = np.concatenate([ds.train.arrays["label"], ds.test.arrays["label"]])
  assert labels.dtype == np.int32 and labels.min() >= 0 and labels.max() < num_classes
  assert len(np.unique(labels)) == num_classes  # Every class occurs in 1,402 images.
  batch = next(data.train_iterator(ds.train, global_batch_size=64, seed=0))
  assert batch["image"].shape == (64, 32, 32, 3) and batch["image"].dtype == np.uint8


def test_mnist_offline_counts_and_class_balance(full_data_dir):
  ds = data.get_dataset("mnist", data_dir=full_data_dir)
  assert (ds.num_train, ds.num_test, ds.input_shape) == (5000, 10000, (28, 28, 1))
  assert ds.train.arrays["image"].dtype == np.uint8 and ds.train.arrays["image"].shape == (5000, 28, 28, 1)
  assert np.bincount(ds.train.arrays["label"]).tolist() == [500] * 10
  assert np.bincount(ds.test.arrays["label"]).tolist() == _MNIST_TEST_PER_CLASS
  assert ds.test.arrays["image"].max() == 255  # Real pixels, not an empty decode.
  images = ds.eval_preprocess(ds.test.arrays["image"][:256])
  assert images.dtype == np.float32 and abs(float(images.mean())) < 0.2  # Normalised.


def test_cifar10_device_preprocessing_is_the_papers_normalisation(data_dir):
  ds = data.get_dataset("cifar10", data_dir=data_dir)
  images = ds.test.arrays["image"][:512]
  out = jax.jit(ds.eval_preprocess)(images)
  mean, std = np.asarray(data.augment.CIFAR_MEAN), np.asarray(data.augment.CIFAR_STD)
  np.testing.assert_allclose(out, (images / 255.0 - mean) / std, atol=1e-5)
  train = jax.jit(ds.train_preprocess)(jax.random.key(0), images)
  assert train.shape == images.shape and train.dtype == np.float32


def test_host_augmentation_variant_ships_normalised_floats(data_dir):
  ds = data.get_dataset("cifar10", data_dir=data_dir, host_augment=True)
  batch = next(data.train_iterator(ds.train, global_batch_size=32, seed=0,
                                   transforms=ds.train_transforms))
  assert batch["image"].dtype == np.float32 and batch["image"].shape == (32, 32, 32, 3)
  evaluation = next(iter(data.eval_batches(ds.test, global_batch_size=32,
                                           transforms=ds.eval_transforms)))
  np.testing.assert_allclose(
      evaluation["image"], data.augment.cifar_eval(ds.test.arrays["image"][:32]), atol=1e-5)


@pytest.mark.parametrize("name, label_key, num_classes", [
    ("cifar10", "label", 10), ("cifar100", "label", 100), ("mnist", "label", 10)])
def test_tfds_sources_through_the_same_pipeline(name, label_key, num_classes):
  with tfds.testing.mock_data(num_examples=24):
    ds = data.get_dataset(name, source="tfds")
    assert ds.num_train == 24 and ds.num_classes == num_classes
    batch = next(data.train_iterator(ds.train, global_batch_size=8, seed=0))
    assert batch["image"].dtype == np.uint8 and batch["image"].shape == (8, *ds.input_shape)
    assert batch["label"].dtype == np.int32
    assert np.all((batch["label"] >= 0) & (batch["label"] < num_classes))
    assert ds.train_preprocess(jax.random.key(0), batch["image"]).dtype == np.float32
    masks = [b["mask"] for b in data.eval_batches(ds.test, global_batch_size=10)]
    assert sum(int(m.sum()) for m in masks) == 24


def test_tfds_cifar100_coarse_labels():
  with tfds.testing.mock_data(num_examples=16):
    ds = data.get_dataset("cifar100", source="tfds", label="coarse")
    labels = data.read_array(ds.train, "label")
  assert ds.num_classes == 20 and labels.max() < 20


def test_tfds_imagenet_crops_to_the_training_and_eval_size():
  with tfds.testing.mock_data(num_examples=12):
    ds = data.get_dataset("imagenet2012", source="tfds", image_size=64, resize=73)
    assert ds.num_classes == 1000 and ds.input_shape == (64, 64, 3)
    raw_shapes = {ds.train[i]["image"].shape for i in range(len(ds.train))}
    assert len(raw_shapes) > 1  # Sizes vary, hence host-side crops.
    batch = next(data.train_iterator(ds.train, global_batch_size=6, seed=0,
                                     transforms=ds.train_transforms))
    assert batch["image"].shape == (6, 64, 64, 3) and batch["image"].dtype == np.uint8
    out = jax.jit(ds.train_preprocess)(jax.random.key(0), batch["image"])
    assert out.dtype == np.float32 and out.shape == (6, 64, 64, 3)
    evaluation = list(data.eval_batches(ds.test, global_batch_size=5, transforms=ds.eval_transforms))
    assert all(b["image"].shape == (5, 64, 64, 3) for b in evaluation)
    assert sum(int(b["mask"].sum()) for b in evaluation) == 12


def test_unprepared_tfds_dataset_says_how_to_prepare_it(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"pip install 'mixup_jax\[tf\]'.*tfds build cifar10"):
    data.get_dataset("cifar10", source="tfds", data_dir=tmp_path)
  with pytest.raises(FileNotFoundError, match="downloads/manual"):
    data.get_dataset("imagenet2012", source="tfds", data_dir=tmp_path)


def test_imagenet_has_no_offline_copy():
  with pytest.raises(ValueError, match="source='tfds'"):
    data.get_dataset("imagenet2012", source="offline")
