"""Tests of mixup_jax.data.uci on the real UCI files: counts, splits, scaling, TFDS.

Most tests read the committed samples (every k-th row of each file, tests/testdata);
the published counts are checked on the full files when MIXUP_JAX_DATA_DIR is set.
"""

import io
import re
import shutil
import urllib.error
import urllib.request

import numpy as np
import pytest
import tensorflow_datasets as tfds

import mixup_jax.data as data_lib
from mixup_jax.data import uci


# Published facts (PROVENANCE.md): total rows, features, classes, label counts.
_EXPECTED = {
    "abalone": (4177, 10, 29, None),
    "arcene": (200, 10000, 2, {0: 112, 1: 88}),
    "arrhythmia": (452, 279, 16, {0: 245, 1: 44, 2: 15, 3: 15, 4: 13, 5: 25, 6: 3, 7: 2, 8: 9,
                                  9: 50, 13: 4, 14: 5, 15: 22}),
    "htru2": (17898, 8, 2, {0: 16259, 1: 1639}),
    "iris": (150, 4, 3, {0: 50, 1: 50, 2: 50}),
    "phishing": (11055, 30, 2, {0: 4898, 1: 6157}),
}


def _counts(labels):
  values, counts = np.unique(labels, return_counts=True)
  return dict(zip(values.tolist(), counts.tolist()))


@pytest.fixture(scope="module")
def loaded(data_dir):
  return {name: uci.load_uci(name, data_dir, download=False) for name in uci.UCI_DATASETS}


@pytest.fixture(scope="module")
def full_loaded(full_data_dir):
  return {name: uci.load_uci(name, full_data_dir, download=False) for name in uci.UCI_DATASETS}


def _sample_rows(data_dir, name):
  """Rows of the committed sample of `name` (train + valid files for Arcene)."""
  rows = uci.sample_rows(data_dir / "uci" / name)
  return sum(n for file, n in rows.items() if file.endswith((".data", ".csv", ".arff")))


@pytest.mark.parametrize("name", uci.UCI_DATASETS)
def test_samples_keep_features_classes_and_dtypes(loaded, data_dir, name):
  _, features, num_classes, _ = _EXPECTED[name]
  d = loaded[name]
  assert len(d.x_train) + len(d.x_test) == _sample_rows(data_dir, name)
  assert d.x_train.shape[1] == d.x_test.shape[1] == features
  assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int32
  assert np.isfinite(d.x_train).all() and np.isfinite(d.x_test).all()
  labels = np.concatenate([d.y_train, d.y_test])
  assert labels.min() >= 0 and labels.max() < num_classes


def test_a_sample_with_a_wrong_count_is_refused(data_dir, tmp_path):
  folder = tmp_path / "uci" / "iris"
  shutil.copytree(data_dir / "uci" / "iris", folder)
  lines = (folder / "iris.data").read_text().splitlines()
  (folder / "iris.data").write_text("\n".join(lines[:-1]) + "\n")
  with pytest.raises(ValueError, match=f"expected {len(lines)} rows"):
    uci.load_uci("iris", tmp_path, download=False)


@pytest.mark.parametrize("name", uci.UCI_DATASETS)
def test_counts_shapes_dtypes_and_classes(full_loaded, name):
  rows, features, num_classes, label_counts = _EXPECTED[name]
  d = full_loaded[name]
  assert d.num_classes == num_classes == uci.UCI_NUM_CLASSES[name]
  assert len(d.x_train) + len(d.x_test) == rows
  assert d.x_train.shape[1] == d.x_test.shape[1] == features
  assert d.x_train.dtype == d.x_test.dtype == np.float32
  assert d.y_train.dtype == d.y_test.dtype == np.int32
  assert np.isfinite(d.x_train).all() and np.isfinite(d.x_test).all()
  labels = np.concatenate([d.y_train, d.y_test])
  assert labels.min() >= 0 and labels.max() < num_classes
  if label_counts is not None:
    assert _counts(labels) == label_counts
  if name == "arcene":  # the official train and valid files are the split
    assert len(d.x_train) == len(d.x_test) == 100
    assert _counts(d.y_train) == _counts(d.y_test) == {0: 56, 1: 44}


def test_abalone_rings_are_classes(full_loaded, full_data_dir):
  d = full_loaded["abalone"]
  rings = np.concatenate([d.y_train, d.y_test]) + 1
  assert len(np.unique(rings)) == 28 and rings.min() == 1 and rings.max() == 29
  assert 28 not in rings  # the one empty class of the 29
  x, _ = uci._read("abalone", uci.uci_folder("abalone", full_data_dir, download=False))
  assert x[:, :3].sum(axis=0).tolist() == [1528, 1307, 1342]  # one-hot M, F, I


def test_arrhythmia_missing_values_imputed_with_training_median(data_dir):
  folder = uci.uci_folder("arrhythmia", data_dir, download=False)
  x, y = uci._read("arrhythmia", folder)
  assert np.isnan(x).any() and x.shape == (_sample_rows(data_dir, "arrhythmia"), 279)
  train_index, test_index = uci.stratified_split(y, 0.2, 0)
  d = uci.load_uci("arrhythmia", data_dir, download=False)
  column = 13  # the J angle: 376 of the 452 rows miss it
  raw_train = x[train_index, column]
  median = np.nanmedian(raw_train)
  filled = np.where(np.isnan(raw_train), median, raw_train)
  expected_missing_value = (median - filled.mean()) / filled.std()
  missing_in_test = np.isnan(x[test_index, column])
  assert missing_in_test.any()
  np.testing.assert_allclose(d.x_test[missing_in_test, column], expected_missing_value, rtol=1e-5)


def test_arcene_uses_official_train_and_valid_files(loaded, data_dir):
  d = loaded["arcene"]
  x_train, y_train, x_valid, y_valid = uci._read(
      "arcene", uci.uci_folder("arcene", data_dir, download=False))
  np.testing.assert_array_equal(d.y_train, y_train)
  np.testing.assert_array_equal(d.y_test, y_valid)
  std = np.where(x_train.std(0) > 0, x_train.std(0), 1.0)
  np.testing.assert_allclose(d.x_test, (x_valid - x_train.mean(0)) / std, rtol=1e-4, atol=1e-4)


def test_standardisation_uses_training_statistics_only(loaded, data_dir):
  d = loaded["iris"]
  np.testing.assert_allclose(d.x_train.mean(0), 0, atol=1e-5)
  np.testing.assert_allclose(d.x_train.std(0), 1, atol=1e-5)
  x, y = uci._read("iris", uci.uci_folder("iris", data_dir, download=False))
  train_index, test_index = uci.stratified_split(y, 0.2, 0)
  mean, std = x[train_index].mean(0), x[train_index].std(0)
  np.testing.assert_allclose(d.x_test, (x[test_index] - mean) / std, rtol=1e-5, atol=1e-6)
  assert abs(d.x_test.mean()) > 1e-3  # test statistics were not used


def test_split_is_seeded_stratified_disjoint_and_complete(loaded, data_dir):
  _, y = uci._read("abalone", uci.uci_folder("abalone", data_dir, download=False))
  train, test = uci.stratified_split(y, 0.2, 0)
  assert np.intersect1d(train, test).size == 0
  np.testing.assert_array_equal(np.sort(np.concatenate([train, test])), np.arange(len(y)))
  for c, count in _counts(y).items():  # round(0.2 * count) of every class in test
    assert np.sum(y[test] == c) == int(np.floor(0.2 * count + 0.5))
  again = uci.load_uci("abalone", data_dir, download=False)
  np.testing.assert_array_equal(again.x_train, loaded["abalone"].x_train)
  np.testing.assert_array_equal(again.y_test, loaded["abalone"].y_test)
  other = uci.load_uci("abalone", data_dir, download=False, split_seed=1)
  assert not np.array_equal(other.y_train, loaded["abalone"].y_train)
  with pytest.raises(ValueError, match="test_fraction"):
    uci.stratified_split(y, 1.0, 0)


def test_htru2_is_read_from_the_uci_zip_when_not_extracted(loaded, data_dir, tmp_path):
  (tmp_path / "uci" / "htru2").mkdir(parents=True)
  shutil.copy(data_dir / "uci" / "htru2" / "HTRU2.zip", tmp_path / "uci" / "htru2")
  shutil.copy(data_dir / "uci" / "htru2" / "SAMPLE.json", tmp_path / "uci" / "htru2")
  from_zip = uci.load_uci("htru2", tmp_path, download=False)
  for a, b in zip(from_zip, loaded["htru2"]):
    np.testing.assert_array_equal(a, b)


def test_missing_files_raise_with_where_to_put_them(tmp_path, monkeypatch):
  with pytest.raises(FileNotFoundError, match=re.escape(str(tmp_path / "uci" / "iris"))):
    uci.load_uci("iris", tmp_path, download=False)

  def offline(url, timeout):
    raise urllib.error.URLError("no network")

  monkeypatch.setattr(urllib.request, "urlopen", offline)
  with pytest.raises(FileNotFoundError, match="archive.ics.uci.edu.*arcene_train.data") as error:
    uci.load_uci("arcene", tmp_path)
  assert str(tmp_path / "uci" / "arcene") in str(error.value)
  assert not list((tmp_path / "uci" / "arcene").glob("*"))  # nothing half-written


def test_download_fetches_the_original_files(data_dir, tmp_path, monkeypatch):
  requested = []

  def fake_uci(url, timeout):  # serves the local originals under their UCI URLs
    requested.append(url)
    name = url.rsplit("/", 1)[1].replace("%20", " ")
    return io.BytesIO((data_dir / "uci" / "phishing" / name).read_bytes())

  monkeypatch.setattr(urllib.request, "urlopen", fake_uci)
  (tmp_path / "uci" / "phishing").mkdir(parents=True)
  shutil.copy(data_dir / "uci" / "phishing" / "SAMPLE.json", tmp_path / "uci" / "phishing")
  d = uci.load_uci("phishing", tmp_path)
  assert requested == [
      "https://archive.ics.uci.edu/ml/machine-learning-databases/00327/Training%20Dataset.arff"]
  assert (tmp_path / "uci" / "phishing" / "Training Dataset.arff").exists()
  local = uci.load_uci("phishing", data_dir, download=False)
  assert _counts(np.concatenate([d.y_train, d.y_test])) == _counts(
      np.concatenate([local.y_train, local.y_test]))


def test_bad_input_raises(data_dir, tmp_path):
  with pytest.raises(ValueError, match="not a UCI dataset"):
    uci.load_uci("wine", data_dir)
  folder = tmp_path / "uci" / "iris"
  folder.mkdir(parents=True)
  lines = (data_dir / "uci" / "iris" / "iris.data").read_text().splitlines()
  (folder / "iris.data").write_text("\n".join(lines[:-3]))
  with pytest.raises(ValueError, match="expected 150 rows"):
    uci.load_uci("iris", tmp_path, download=False)


def test_raw_preprocessing_keeps_the_files_values(data_dir):
  raw = uci.load_uci("iris", data_dir, preprocessing="raw")
  standardised = uci.load_uci("iris", data_dir)
  # The first training row is the file's first line, 5.1,3.5,1.4,0.2,Iris-setosa.
  np.testing.assert_array_equal(raw.x_train[0], np.float32([5.1, 3.5, 1.4, 0.2]))
  mean, std = raw.x_train.mean(0), raw.x_train.std(0)
  np.testing.assert_allclose(standardised.x_test, (raw.x_test - mean) / std, atol=1e-5)
  with pytest.raises(ValueError, match="preprocessing must be one of"):
    uci.load_uci("iris", data_dir, preprocessing="minmax")


def test_tfds_builder_round_trip_without_tensorflow(loaded, data_dir, tmp_path):
  """Run in the default install (no TensorFlow), this shows that TFDS needs none here."""
  builder = uci.Uci(config="iris", data_dir=tmp_path, raw_data_dir=data_dir)
  builder.download_and_prepare()
  assert list(tmp_path.glob("uci/iris/1.0.0/*.array_record*"))
  assert builder.info.features["label"].num_classes == 3
  splits = tfds.data_source("uci/iris", data_dir=tmp_path, download=False)
  d = loaded["iris"]
  for split, x, y in (("train", d.x_train, d.y_train), ("test", d.x_test, d.y_test)):
    records = splits[split]
    assert len(records) == len(y)
    np.testing.assert_array_equal(np.stack([records[i]["features"] for i in range(len(y))]), x)
    np.testing.assert_array_equal([records[i]["label"] for i in range(len(y))], y)
  through_registry = data_lib.get_dataset("uci/iris", source="tfds", data_dir=tmp_path)
  np.testing.assert_array_equal(through_registry.test.arrays["features"], d.x_test)
  assert through_registry.test.arrays["label"].dtype == np.int32


def test_registry_serves_every_uci_dataset_to_the_loader(data_dir):
  for name in uci.UCI_DATASETS:
    _, features, num_classes, _ = _EXPECTED[name]
    ds = data_lib.get_dataset(f"uci/{name}", data_dir=data_dir)
    assert ds.num_train + ds.num_test == _sample_rows(data_dir, name)
    assert (ds.input_shape, ds.num_classes) == ((features,), num_classes)
    assert ds.input_key == "features"
  ds = data_lib.get_dataset("uci/iris", data_dir=data_dir)
  batch = next(data_lib.train_iterator(ds.train, global_batch_size=16, seed=0))
  assert batch["features"].shape == (16, 4) and batch["label"].dtype == np.int32
