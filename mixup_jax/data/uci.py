"""The six UCI datasets of Table 4, as NumPy arrays and as a TFDS builder.

The paper trains a 2x128 ReLU network on Abalone, Arcene, Arrhythmia, HTRU2, Iris
and Phishing. This module reads the files exactly as UCI publishes them from
`<data_dir>/uci/<name>/` (downloading them from the UCI repository when they are
absent and a network is there), and turns each into a fixed train/test split:

| name | file(s) read | features | classes | train / test |
|---|---|---|---|---|
| abalone | abalone.data | 10 (sex one-hot M/F/I + 7 measurements) | 29 (rings 1..29) | 3344 / 833 |
| arcene | arcene_{train,valid}.{data,labels} | 10000 | 2 (label 1 = +1) | 100 / 100 |
| arrhythmia | arrhythmia.data | 279 | 16 (codes 1..16) | 361 / 91 |
| htru2 | HTRU_2.csv (or inside HTRU2.zip) | 8 | 2 (1 = pulsar) | 14318 / 3580 |
| iris | iris.data | 4 | 3 (setosa, versicolor, virginica) | 120 / 30 |
| phishing | Training Dataset.arff | 30 | 2 (label 1 = Result 1) | 8844 / 2211 |

Choices, all fixed so that every run sees the same data:
- Label k means class code k + 1 for Abalone (k + 1 rings: ring count as class, as
  the paper's 74 % error implies; ring 28 never occurs, so one class is empty) and
  Arrhythmia (its 16 codes; 11, 12, 13 never occur). The output layer keeps the
  dataset's declared classes rather than renumbering the ones that happen to occur.
- Splits: Arcene uses its official train file for training and its valid file for
  testing. The others use a stratified 80/20 split: within each class the rows are
  permuted with `numpy.random.default_rng(split_seed)` (seed 0) and the first
  round(0.2 * count) go to test; a class with a single row stays in training.
- Missing values ('?', only in Arrhythmia: 408 cells, 376 of them in attribute 14,
  the J angle) are replaced by the median of the observed training values of
  their column.
- Standardisation: every feature is centred and scaled by the mean and standard
  deviation of the training split; a column that is constant in training keeps
  scale 1 (it becomes 0 there).
- File quirks handled: HTRU2's old-Mac CR line endings, Phishing's ARFF header
  and CRLF line endings, Arcene's trailing spaces, Iris's trailing blank line.
  The row and column counts of every file are checked against the published ones.

`load_uci` returns the arrays (what the Table 4 experiment uses); `Uci` is the TFDS
builder (one config per dataset, ArrayRecord files, no TensorFlow needed) whose
splits equal `load_uci`'s row for row; `get_dataset('uci/<name>')` serves either as
random-access sources of {'features': [D] float32, 'label': int32} for the loader.
"""

import dataclasses
import functools
import json
import os
import pathlib
import urllib.error
import urllib.request
import zipfile
from typing import Callable, NamedTuple

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from mixup_jax.data import pipeline
from mixup_jax.data import registry

UCI_DATASETS = ("abalone", "arcene", "arrhythmia", "htru2", "iris", "phishing")
_UCI_URL = "https://archive.ics.uci.edu/ml/machine-learning-databases/"
_IRIS_CLASSES = ("Iris-setosa", "Iris-versicolor", "Iris-virginica")
_ABALONE_SEX = ("M", "F", "I")


class UciData(NamedTuple):
  """One UCI dataset split into standardised train and test arrays.

  Attributes:
    x_train: [N_train, D] float32, standardised with training statistics.
    y_train: [N_train] int32 in [0, num_classes).
    x_test: [N_test, D] float32, standardised with the same statistics.
    y_test: [N_test] int32.
    num_classes: size of the output layer.
  """

  x_train: np.ndarray
  y_train: np.ndarray
  x_test: np.ndarray
  y_test: np.ndarray
  num_classes: int


@dataclasses.dataclass(frozen=True)
class _Spec:
  """Where a dataset's files come from and what they must contain."""

  files: tuple[str, ...]  # names under <data_dir>/uci/<name>/, in download order
  urls: tuple[str, ...]  # one per file
  num_features: int
  num_classes: int
  read: Callable[[pathlib.Path], tuple]  # folder -> (x, y) or (x_tr, y_tr, x_te, y_te)


def _text(path: pathlib.Path) -> list[str]:
  """Non-empty lines of a text file, whatever its line endings (LF, CRLF, CR)."""
  return [line.strip() for line in path.read_text(encoding="ascii").splitlines() if line.strip()]


def sample_rows(folder: pathlib.Path) -> dict[str, int] | None:
  """The rows kept of each file when `folder` holds a test sample, else None.

  tools/make_test_data.py writes every k-th row of the published files and a
  SAMPLE.json naming how many; those counts then replace the published ones, so that a
  sample is read by the same code and still checked row for row.
  """
  path = folder / "SAMPLE.json"
  return json.loads(path.read_text())["rows"] if path.exists() else None


def _check_shape(path: pathlib.Path, rows: list, num_rows: int, num_cols: int) -> None:
  """Raises if a parsed file does not have the published (or sampled) rows/columns."""
  sample = sample_rows(path.parent)
  if sample is not None:
    if path.name not in sample:
      raise ValueError(f"{path.parent / 'SAMPLE.json'} names no row count for {path.name}; "
                       "remake the sample with tools/make_test_data.py.")
    num_rows = sample[path.name]
  widths = {len(r) for r in rows}
  if len(rows) != num_rows or widths != {num_cols}:
    raise ValueError(
        f"{path}: expected {num_rows} rows of {num_cols} values, found {len(rows)} rows "
        f"of {sorted(widths)} values; replace it with the original UCI file."
    )


def _to_float(path: pathlib.Path, rows: list[list[str]]) -> np.ndarray:
  """[N, D] float64 from string cells, with NaN where the file has '?'."""
  try:
    return np.array([[np.nan if v == "?" else float(v) for v in r] for r in rows])
  except ValueError as e:
    raise ValueError(
        f"{path}: non-numeric value ({e}); replace it with the original UCI file.") from e


def _read_abalone(folder: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  path = folder / "abalone.data"
  rows = [line.split(",") for line in _text(path)]
  _check_shape(path, rows, 4177, 9)
  unknown = {r[0] for r in rows} - set(_ABALONE_SEX)
  if unknown:
    raise ValueError(f"{path}: unknown sex codes {sorted(unknown)}; expected {_ABALONE_SEX}.")
  sex = np.array([[float(r[0] == s) for s in _ABALONE_SEX] for r in rows])
  values = _to_float(path, [r[1:] for r in rows])
  return np.concatenate([sex, values[:, :-1]], axis=1), values[:, -1].astype(np.int64) - 1


def _read_arcene_part(folder: pathlib.Path, part: str) -> tuple[np.ndarray, np.ndarray]:
  data, labels = folder / f"arcene_{part}.data", folder / f"arcene_{part}.labels"
  rows = [line.split() for line in _text(data)]
  _check_shape(data, rows, 100, 10000)
  signs = [line.split() for line in _text(labels)]
  _check_shape(labels, signs, 100, 1)
  y = _to_float(labels, signs)[:, 0]
  if not np.all(np.isin(y, (-1, 1))):
    raise ValueError(f"{labels}: labels must be +1/-1.")
  return _to_float(data, rows), (y > 0).astype(np.int64)


def _read_arcene(folder: pathlib.Path) -> tuple:
  return _read_arcene_part(folder, "train") + _read_arcene_part(folder, "valid")


def _read_arrhythmia(folder: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  path = folder / "arrhythmia.data"
  rows = [line.split(",") for line in _text(path)]
  _check_shape(path, rows, 452, 280)
  values = _to_float(path, rows)
  return values[:, :-1], values[:, -1].astype(np.int64) - 1


def _read_htru2(folder: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  path = folder / "HTRU_2.csv"
  if path.exists():
    text = path.read_text(encoding="ascii")
  else:  # Read the member straight from the archive UCI serves.
    path = folder / "HTRU2.zip"
    with zipfile.ZipFile(path) as archive:
      text = archive.read("HTRU_2.csv").decode("ascii")
  rows = [line.split(",") for line in text.splitlines() if line.strip()]  # CR-only endings
  _check_shape(path, rows, 17898, 9)
  values = _to_float(path, rows)
  return values[:, :-1], values[:, -1].astype(np.int64)


def _read_iris(folder: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  path = folder / "iris.data"
  rows = [line.split(",") for line in _text(path)]
  _check_shape(path, rows, 150, 5)
  unknown = {r[-1] for r in rows} - set(_IRIS_CLASSES)
  if unknown:
    raise ValueError(f"{path}: unknown classes {sorted(unknown)}; expected {_IRIS_CLASSES}.")
  y = np.array([_IRIS_CLASSES.index(r[-1]) for r in rows], dtype=np.int64)
  return _to_float(path, [r[:-1] for r in rows]), y


def _read_phishing(folder: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
  path = folder / "Training Dataset.arff"
  lines = _text(path)
  lowered = [line.lower() for line in lines]
  if "@data" not in lowered:
    raise ValueError(f"{path}: no '@data' line; expected the ARFF file UCI publishes.")
  start = lowered.index("@data")
  attributes = [line.split()[1] for line in lines[:start] if line.lower().startswith("@attribute")]
  if len(attributes) != 31 or attributes[-1] != "Result":
    raise ValueError(f"{path}: expected 30 feature attributes and 'Result' in the ARFF header.")
  rows = [line.split(",") for line in lines[start + 1:] if not line.startswith("%")]
  _check_shape(path, rows, 11055, 31)
  values = _to_float(path, rows)
  return values[:, :-1], (values[:, -1] > 0).astype(np.int64)


def _url(path: str) -> str:
  return _UCI_URL + path.replace(" ", "%20")


_SPECS = {
    "abalone": _Spec(("abalone.data",), (_url("abalone/abalone.data"),), 10, 29, _read_abalone),
    "arcene": _Spec(
        ("arcene_train.data", "arcene_train.labels", "arcene_valid.data", "arcene_valid.labels"),
        (
            _url("arcene/ARCENE/arcene_train.data"),
            _url("arcene/ARCENE/arcene_train.labels"),
            _url("arcene/ARCENE/arcene_valid.data"),
            _url("arcene/arcene_valid.labels"),
        ),
        10000,
        2,
        _read_arcene,
    ),
    "arrhythmia": _Spec(
        ("arrhythmia.data",), (_url("arrhythmia/arrhythmia.data"),), 279, 16, _read_arrhythmia
    ),
    "htru2": _Spec(("HTRU2.zip",), (_url("00372/HTRU2.zip"),), 8, 2, _read_htru2),
    "iris": _Spec(("iris.data",), (_url("iris/iris.data"),), 4, 3, _read_iris),
    "phishing": _Spec(
        ("Training Dataset.arff",), (_url("00327/Training Dataset.arff"),), 30, 2, _read_phishing
    ),
}
UCI_NUM_CLASSES = {name: spec.num_classes for name, spec in _SPECS.items()}


def _spec(name: str) -> _Spec:
  if name not in _SPECS:
    raise ValueError(f"name={name!r} is not a UCI dataset of Table 4; use one of {UCI_DATASETS}.")
  return _SPECS[name]


def _resolve_data_dir(data_dir: str | os.PathLike | None) -> pathlib.Path:
  """`data_dir`, else $MIXUP_JAX_DATA_DIR."""
  if data_dir is None:
    data_dir = os.environ.get("MIXUP_JAX_DATA_DIR")
    if not data_dir:
      raise ValueError("data_dir is None and MIXUP_JAX_DATA_DIR is unset; pass data_dir or set it.")
  return pathlib.Path(data_dir)


def _present(name: str, folder: pathlib.Path) -> bool:
  if name == "htru2" and (folder / "HTRU_2.csv").exists():
    return True
  return all((folder / f).exists() for f in _SPECS[name].files)


def _download(name: str, folder: pathlib.Path) -> None:
  """Fetches the missing original files of `name` from the UCI repository into `folder`.

  Raises:
    FileNotFoundError: the download failed (no network, moved URL); the message says
      where to put the files by hand.
  """
  spec = _SPECS[name]
  try:
    folder.mkdir(parents=True, exist_ok=True)
    for file, url in zip(spec.files, spec.urls):
      target = folder / file
      if target.exists():
        continue
      partial = target.with_name(target.name + ".part")  # never leave a truncated file behind
      with urllib.request.urlopen(url, timeout=60) as response:
        partial.write_bytes(response.read())
      partial.rename(target)
  except (urllib.error.URLError, OSError) as e:
    raise FileNotFoundError(
        f"UCI dataset {name!r}: the files {list(spec.files)} are not in {folder} and downloading "
        f"them failed ({e}). Download them from {list(spec.urls)} (or copy them from another "
        f"machine) into {folder}, keeping the UCI file names."
    ) from e


def uci_folder(
    name: str, data_dir: str | os.PathLike | None = None, *, download: bool = True
) -> pathlib.Path:
  """The folder `<data_dir>/uci/<name>/` holding the original files, fetched if absent.

  Args:
    name: one of `UCI_DATASETS`.
    data_dir: root of the data directory; None reads $MIXUP_JAX_DATA_DIR.
    download: fetch missing files from the UCI repository (needs a network).

  Raises:
    ValueError: unknown `name`, or no data directory given.
    FileNotFoundError: files missing and not downloadable; says where to put them.
  """
  _spec(name)
  folder = _resolve_data_dir(data_dir) / "uci" / name
  if not _present(name, folder):
    if not download:
      raise FileNotFoundError(
          f"UCI dataset {name!r}: the files {list(_SPECS[name].files)} are not in {folder}. "
          f"Pass download=True (needs a network) or put the files from "
          f"{list(_SPECS[name].urls)} there."
      )
    _download(name, folder)
  return folder


@functools.lru_cache(maxsize=None)
def _read(name: str, folder: pathlib.Path) -> tuple[np.ndarray, ...]:
  arrays = _SPECS[name].read(folder)
  for a in arrays:
    a.flags.writeable = False  # shared by every caller through the cache
  return arrays


def stratified_split(
    labels: np.ndarray, test_fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
  """Seeded stratified split of row indices.

  Within each class the rows are permuted with `numpy.random.default_rng(seed)` and
  the first round(test_fraction * count) go to test (halves round up).

  Args:
    labels: [N] integer class of each row.
    test_fraction: share of each class that goes to test, in (0, 1).
    seed: seed of the permutation; the same seed always gives the same split.

  Returns:
    (train_index, test_index): sorted int64 arrays that partition range(N).
  """
  if not 0.0 < test_fraction < 1.0:
    raise ValueError(f"test_fraction={test_fraction} must lie in (0, 1).")
  rng = np.random.default_rng(seed)
  test = []
  for c in np.unique(labels):
    rows = rng.permutation(np.flatnonzero(labels == c))
    test.append(rows[: int(np.floor(test_fraction * len(rows) + 0.5))])
  test_index = np.sort(np.concatenate(test))
  train_index = np.setdiff1d(np.arange(len(labels)), test_index)
  return train_index, test_index


PREPROCESSING = ("standardise", "raw")


def _impute_and_standardise(
    x_train: np.ndarray, x_test: np.ndarray, standardise: bool = True
) -> tuple[np.ndarray, np.ndarray]:
  """Training-median imputation of NaN, then training mean/std standardisation."""
  if np.isnan(x_train).any() or np.isnan(x_test).any():
    empty = np.flatnonzero(np.isnan(x_train).all(axis=0))
    if empty.size:
      raise ValueError(f"columns {empty.tolist()} have no observed training value to impute from.")
    median = np.nanmedian(x_train, axis=0)
    x_train = np.where(np.isnan(x_train), median, x_train)
    x_test = np.where(np.isnan(x_test), median, x_test)
  if not standardise:
    return x_train.astype(np.float32), x_test.astype(np.float32)
  mean, std = x_train.mean(axis=0), x_train.std(axis=0)
  std = np.where(std > 0, std, 1.0)
  return ((x_train - mean) / std).astype(np.float32), ((x_test - mean) / std).astype(np.float32)


def load_uci(
    name: str,
    data_dir: str | os.PathLike | None = None,
    *,
    download: bool = True,
    split_seed: int = 0,
    test_fraction: float = 0.2,
    preprocessing: str = "standardise",
) -> UciData:
  """Train/test arrays of one Table 4 dataset (see the module docstring for choices).

  Args:
    name: one of `UCI_DATASETS`.
    data_dir: root of the data directory (files in `<data_dir>/uci/<name>/`); None
      reads $MIXUP_JAX_DATA_DIR.
    download: fetch missing files from the UCI repository.
    split_seed: seed of the stratified split (ignored by Arcene's official split).
    test_fraction: share of each class held out for test (ignored by Arcene).
    preprocessing: 'standardise' (the default, see the module docstring) or 'raw'
      (missing values imputed, the features otherwise as the files give them: for
      studying which protocol the paper's numbers come from).

  Returns:
    `UciData(x_train, y_train, x_test, y_test, num_classes)`, float32 / int32.
  """
  if preprocessing not in PREPROCESSING:
    raise ValueError(f"preprocessing must be one of {PREPROCESSING}, got {preprocessing!r}.")
  spec = _spec(name)
  arrays = _read(name, uci_folder(name, data_dir, download=download))
  if len(arrays) == 4:  # Official split.
    x_train, y_train, x_test, y_test = arrays
  else:
    x, y = arrays
    train_index, test_index = stratified_split(y, test_fraction, split_seed)
    x_train, y_train, x_test, y_test = x[train_index], y[train_index], x[test_index], y[test_index]
  x_train, x_test = _impute_and_standardise(x_train, x_test,
                                            standardise=preprocessing == "standardise")
  return UciData(
      x_train, y_train.astype(np.int32), x_test, y_test.astype(np.int32), spec.num_classes)


class UciConfig(tfds.core.BuilderConfig):
  """One UCI dataset; the split is `load_uci`'s default (seed 0, 80/20 or official)."""

  def __init__(self, *, num_features: int, num_classes: int, **kwargs):
    super().__init__(**kwargs)
    self.num_features = num_features
    self.num_classes = num_classes


class Uci(tfds.core.GeneratorBasedBuilder):
  """TFDS builder `uci/<name>` for the Table 4 datasets, written as ArrayRecord.

  Preparing needs no TensorFlow, and neither does reading back:

    builder = Uci(config="iris", data_dir=tfds_dir, raw_data_dir=data_dir)
    builder.download_and_prepare()
    train = tfds.data_source("uci/iris", data_dir=tfds_dir)["train"]

  Examples are stored in `load_uci` order ({'features': [D] float32 standardised,
  'label': int64}), so `train[i]` equals row i of `load_uci(...).x_train`.
  """

  VERSION = tfds.core.Version("1.0.0")
  # Where TFDS looks for a checksums file. Set explicitly because TFDS's own lookup
  # imports `importlib_resources`, which TFDS requires only on Python < 3.9.
  code_path = epath.Path(__file__)
  RELEASE_NOTES = {"1.0.0": "Stratified 80/20 split with seed 0 (Arcene: official train/valid)."}
  BUILDER_CONFIGS = [
      UciConfig(
          name=n, num_features=s.num_features, num_classes=s.num_classes, description=f"UCI {n}.")
      for n, s in _SPECS.items()
  ]

  def __init__(
      self,
      *,
      raw_data_dir: str | os.PathLike | None = None,
      file_format: str = "array_record",
      **kwargs,
  ):
    """`raw_data_dir` holds `uci/<name>/` (None: $MIXUP_JAX_DATA_DIR, or TFDS's download
    dir when that is unset); other args as TFDS (file_format defaults to ArrayRecord)."""
    self._raw_data_dir = raw_data_dir
    super().__init__(file_format=file_format, **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    return tfds.core.DatasetInfo(
        builder=self,
        description="UCI dataset of the mixup paper's Table 4, standardised with training "
        "statistics.",
        features=tfds.features.FeaturesDict({
            "features": tfds.features.Tensor(shape=(config.num_features,), dtype=np.float32),
            "label": tfds.features.ClassLabel(num_classes=config.num_classes),
        }),
        supervised_keys=("features", "label"),
        homepage="https://archive.ics.uci.edu/",
        disable_shuffling=True,  # keep load_uci's row order
    )

  def _split_generators(self, dl_manager):
    # load_uci reads (or fetches) the files itself, so the arrays and the builder agree.
    # With no data directory at all, the originals are fetched into TFDS's download dir.
    raw_data_dir = self._raw_data_dir
    if raw_data_dir is None and not os.environ.get(registry.DATA_DIR_ENV):
      raw_data_dir = dl_manager.download_dir
    data = load_uci(self.builder_config.name, raw_data_dir)
    return {
        "train": self._generate_examples(data.x_train, data.y_train),
        "test": self._generate_examples(data.x_test, data.y_test),
    }

  def _generate_examples(self, features: np.ndarray, labels: np.ndarray):
    for i, (x, y) in enumerate(zip(features, labels)):
      yield i, {"features": x, "label": int(y)}


def _tfds_split(name: str, split: str, data_dir) -> pipeline.ArraySource:
  """One split of the prepared `uci/<name>` TFDS dataset, read into memory (int32 labels)."""
  records = tfds.data_source(f"uci/{name}", split=split, data_dir=data_dir)
  items = [records[i] for i in range(len(records))]
  return pipeline.ArraySource({
      "features": np.stack([item["features"] for item in items]).astype(np.float32),
      "label": np.array([item["label"] for item in items], dtype=np.int32),
  })


def _register(name: str) -> None:
  @registry.register_dataset(f"uci/{name}")
  def build(*, data_dir=None, source: str = "offline", **options) -> registry.Dataset:
    """UCI `name`: source='offline' reads `<data_dir>/uci/<name>/` (options: those of
    `load_uci`); source='tfds' reads (preparing it first if needed) the `uci/<name>` TFDS
    dataset in the TFDS `data_dir`, whose originals come from $MIXUP_JAX_DATA_DIR."""
    spec = _SPECS[name]
    if source == "tfds":
      if options:
        raise ValueError(
            f"options {sorted(options)} apply to source='offline' only; the TFDS split is fixed.")
      train, test = (_tfds_split(name, split, data_dir) for split in ("train", "test"))
    else:
      data = load_uci(name, data_dir, **options)
      train = pipeline.ArraySource({"features": data.x_train, "label": data.y_train})
      test = pipeline.ArraySource({"features": data.x_test, "label": data.y_test})
    return registry.Dataset(
        name=f"uci/{name}",
        train=train,
        test=test,
        num_classes=spec.num_classes,
        input_shape=(spec.num_features,),
        input_key="features",
        info={"files": spec.files, "source": source},
    )


for _name in UCI_DATASETS:
  _register(_name)
