"""Google Speech Commands v0.01 (the paper's 30-word task) and its spectrogram.

TFDS's `speech_commands` is the 12-class v0.02 task, so the paper's data needs its own
reader. The official v0.01 release (`speech_commands_v0.01.tar.gz`, or that archive
extracted into a folder) has one folder per word plus `_background_noise_`, and two
lists that fix the splits: files named in `validation_list.txt` are validation, those in
`testing_list.txt` are test, every other word recording is training (51,088 / 6,798 /
6,835 in the full release). `_background_noise_` is not a word and is left out; any
other folder that is not one of the 30 words is an error.

Labels index `WORDS`, the 30 words in sorted order. WAV files are read with the standard
library (`wave`): 16 kHz mono 16-bit PCM, anything else is an error.

The spectrogram follows the paper's code (GCommandsPytorch, librosa):
- samples scaled to [-1, 1) as int16 / 32768 (what librosa.load returns);
- STFT with n_fft = win_length = 320 (20 ms) and a periodic Hamming window, hop 160
  (10 ms), centred frames: the signal is reflect-padded by 160 samples on each side,
  so a clip of L samples has 1 + L // 160 frames (101 for one second);
- magnitude, then log(1 + S): [161 frequencies, frames];
- zero-padded (after the log) or truncated to 101 frames -> [161, 101];
- z-scored per utterance over all 161 x 101 values, padding included, with the
  unbiased standard deviation (torch.Tensor.std). A silent clip (std 0) is only
  centred instead of producing NaN as the reference does.
`spectrogram` is the NumPy version for one clip; `spectrogram_jax` is the batched,
jit-able version that takes zero-padded clips plus their lengths, for computing
spectrograms on the accelerator. Both give the same numbers.
"""

import io
import os
import pathlib
import tarfile
import wave
from typing import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import tensorflow_datasets as tfds
from etils import epath

from mixup_jax.data import registry

WORDS = (
    "bed", "bird", "cat", "dog", "down", "eight", "five", "four", "go", "happy",
    "house", "left", "marvin", "nine", "no", "off", "on", "one", "right", "seven",
    "sheila", "six", "stop", "three", "tree", "two", "up", "wow", "yes", "zero",
)  # fmt: skip
SPLITS = ("train", "validation", "test")
SAMPLE_RATE = 16000
N_FFT = 320  # 20 ms window
HOP = 160  # 10 ms hop
NUM_BINS = N_FFT // 2 + 1  # 161
NUM_FRAMES = 101
ARCHIVE_URL = "http://download.tensorflow.org/data/speech_commands_v0.01.tar.gz"
_FOLDER_NAME = "speech_commands_v0.01"
_NOISE_FOLDER = "_background_noise_"


def read_wav(file) -> np.ndarray:
  """Samples of a 16 kHz mono 16-bit PCM WAV file (a path or a binary file object).

  Returns:
    [L] int16.
  """
  with wave.open(os.fspath(file) if isinstance(file, (str, os.PathLike)) else file, "rb") as wav:
    form = (wav.getnchannels(), wav.getsampwidth(), wav.getframerate())
    if form != (1, 2, SAMPLE_RATE):
      raise ValueError(
          f"{file}: (channels, bytes per sample, rate) = {form}; Speech Commands is (1, 2, 16000)."
      )
    return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.int16)


def _hamming() -> np.ndarray:
  """Periodic Hamming window of N_FFT samples (scipy get_window('hamming', 320))."""
  return 0.54 - 0.46 * np.cos(2 * np.pi * np.arange(N_FFT) / N_FFT)


def _to_float(audio) -> np.ndarray:
  audio = np.asarray(audio)
  if audio.dtype == np.int16:
    return audio.astype(np.float64) / 32768.0
  if not np.issubdtype(audio.dtype, np.floating):
    raise ValueError(f"audio dtype {audio.dtype}: pass int16 samples or floats in [-1, 1].")
  return audio.astype(np.float64)


def spectrogram(audio: np.ndarray) -> np.ndarray:
  """Normalised log-magnitude spectrogram of one clip (see the module docstring).

  Args:
    audio: [L] int16 samples, or floats already scaled to [-1, 1]; L > 160.

  Returns:
    [161, 101] float32, zero mean and unit (unbiased) standard deviation.
  """
  x = _to_float(audio)
  if x.ndim != 1 or len(x) <= N_FFT // 2:
    raise ValueError(f"audio shape {x.shape}: expected one clip [L] with L > {N_FFT // 2} samples.")
  padded = np.pad(x, N_FFT // 2, mode="reflect")
  frames = np.lib.stride_tricks.sliding_window_view(padded, N_FFT)[::HOP]  # [1 + L // HOP, N_FFT]
  log_mag = np.log1p(np.abs(np.fft.rfft(frames[:NUM_FRAMES] * _hamming(), axis=-1))).T
  out = np.zeros((NUM_BINS, NUM_FRAMES))
  out[:, : log_mag.shape[1]] = log_mag
  out -= out.mean()
  std = out.std(ddof=1)
  return (out / std if std > 0 else out).astype(np.float32)


def _spectrogram_one(audio: jax.Array, length: jax.Array) -> jax.Array:
  """[N] float32 clip whose first `length` samples are real -> [161, 101]."""
  # Sample index read by every (frame, tap), reflecting at both ends of the real clip.
  t = jnp.arange(NUM_FRAMES)[:, None] * HOP + jnp.arange(N_FFT)[None, :] - N_FFT // 2
  t = jnp.abs(t)
  t = jnp.where(t >= length, 2 * (length - 1) - t, t)
  frames = audio[jnp.clip(t, 0, audio.shape[0] - 1)]  # [101, 320]
  log_mag = jnp.log1p(jnp.abs(jnp.fft.rfft(frames * jnp.asarray(_hamming(), jnp.float32), axis=-1)))
  real = jnp.arange(NUM_FRAMES)[:, None] < 1 + length // HOP  # frames past the clip are padding
  spec = jnp.where(real, log_mag, 0.0).T
  spec = spec - spec.mean()
  std = jnp.sqrt(jnp.sum(spec**2) / (spec.size - 1))
  return jnp.where(std > 0, spec / jnp.where(std > 0, std, 1.0), spec)


@jax.jit
def spectrogram_jax(audio: jax.Array, length: jax.Array) -> jax.Array:
  """Batched, jitted `spectrogram` of zero-padded clips (input checks run at trace time).

  Args:
    audio: [..., N] int16 samples or floats in [-1, 1], each clip zero-padded to N.
    length: [...] int, the real number of samples of each clip, in (160, N].

  Returns:
    [..., 161, 101] float32, equal to `spectrogram(audio[i, :length[i]])`.
  """
  audio, length = jnp.asarray(audio), jnp.asarray(length)
  if audio.ndim < 1 or length.shape != audio.shape[:-1]:
    raise ValueError(
        f"length shape {length.shape} must equal audio shape {audio.shape} minus the last axis.")
  if not jnp.issubdtype(length.dtype, jnp.integer):
    raise ValueError(f"length dtype {length.dtype}: pass integer sample counts.")
  if audio.dtype == jnp.int16:
    audio = audio.astype(jnp.float32) / 32768.0
  elif jnp.issubdtype(audio.dtype, jnp.floating):
    audio = audio.astype(jnp.float32)
  else:
    raise ValueError(f"audio dtype {audio.dtype}: pass int16 samples or floats in [-1, 1].")
  fn = _spectrogram_one
  for _ in range(audio.ndim - 1):
    fn = jax.vmap(fn)
  return fn(audio, length)


# ---------------------------------------------------------------------------------
# Reading the release: folder or archive.


def _split_of(relpath: str, validation: set[str], test: set[str]) -> str:
  return "validation" if relpath in validation else "test" if relpath in test else "train"


def _read_list(text: str) -> set[str]:
  return {line.strip() for line in text.splitlines() if line.strip()}


def _check_word(word: str, where) -> bool:
  """True for a word folder, False for background noise, error for anything else."""
  if word == _NOISE_FOLDER:
    return False
  if word not in WORDS:
    raise ValueError(f"{where}: folder {word!r} is not one of the 30 v0.01 words; is this v0.02?")
  return True


def list_folder(root: str | os.PathLike, split: str) -> list[tuple[str, int]]:
  """(relative path 'word/file.wav', label) of one split of an extracted release, sorted by path."""
  if split not in SPLITS:
    raise ValueError(f"split={split!r}; use one of {SPLITS}.")
  root = pathlib.Path(root)
  lists = [root / "validation_list.txt", root / "testing_list.txt"]
  if not all(p.exists() for p in lists):
    raise FileNotFoundError(
        f"{root} lacks validation_list.txt / testing_list.txt; is it a v0.01 release?")
  validation, test = (_read_list(p.read_text()) for p in lists)
  examples = []
  for folder in sorted(p for p in root.iterdir() if p.is_dir()):
    if _check_word(folder.name, root):
      for wav in sorted(folder.glob("*.wav")):
        relpath = f"{folder.name}/{wav.name}"
        if _split_of(relpath, validation, test) == split:
          examples.append((relpath, WORDS.index(folder.name)))
  return examples


def _archive_members(path: pathlib.Path) -> Iterator[tuple[str, tarfile.TarFile, tarfile.TarInfo]]:
  """(name without leading './', archive, member) of every regular file, in archive order."""
  with tarfile.open(path, "r:*") as archive:
    for member in archive:
      if member.isfile():
        yield member.name.removeprefix("./"), archive, member


def _iter_archive(path: pathlib.Path, split: str) -> Iterator[tuple[int, str, int, np.ndarray]]:
  """(position in sorted order, relpath, label, int16 samples) of one split of the archive.

  Two sequential passes (a .tar.gz has no cheap random access): the first reads the
  two lists and the member names, the second decodes the split's clips.
  """
  lists, names = {}, []
  for name, archive, member in _archive_members(path):
    if name in ("validation_list.txt", "testing_list.txt"):
      lists[name] = _read_list(archive.extractfile(member).read().decode())
    word, _, file = name.rpartition("/")
    if word and "/" not in word and file.endswith(".wav") and _check_word(word, path):
      names.append(name)
  if len(lists) != 2:
    raise ValueError(
        f"{path} lacks validation_list.txt / testing_list.txt; is it the v0.01 archive?")
  validation, test = lists["validation_list.txt"], lists["testing_list.txt"]
  wanted = sorted(n for n in names if _split_of(n, validation, test) == split)
  position = {name: i for i, name in enumerate(wanted)}
  for name, archive, member in _archive_members(path):
    if name in position:
      audio = read_wav(io.BytesIO(archive.extractfile(member).read()))
      yield position[name], name, WORDS.index(name.partition("/")[0]), audio


def find_release(
    source: str | os.PathLike | None = None, data_dir: str | os.PathLike | None = None
) -> pathlib.Path:
  """The v0.01 folder or archive.

  Args:
    source: explicit path of the extracted folder or of the archive.
    data_dir: used when `source` is None: looks for `speech_commands_v0.01/` and then
      `speech_commands_v0.01.tar.gz` in it (None: $MIXUP_JAX_DATA_DIR).
  """
  if source is not None:
    candidates = [pathlib.Path(source)]
  else:
    root = registry.resolve_data_dir(data_dir)
    candidates = [root / _FOLDER_NAME, root / f"{_FOLDER_NAME}.tar.gz"]
  for path in candidates:
    if path.exists():
      return path
  raise FileNotFoundError(
      f"Speech Commands v0.01 not found at {[str(c) for c in candidates]}. Download {ARCHIVE_URL} "
      f"(1.4 GB) and put the archive, or the folder it extracts to, at one of these paths, "
      f"or pass its path as `source` (get_dataset option `release`)."
  )


# ---------------------------------------------------------------------------------
# Random-access sources for the loader.


class WavFolderSource:
  """Random access into one split of an extracted release: {'audio': [L] int16, 'label': int64}."""

  def __init__(self, root: str | os.PathLike, split: str):
    self._root = pathlib.Path(root)
    self._examples = list_folder(self._root, split)
    self.split = split

  def __len__(self) -> int:
    return len(self._examples)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    relpath, label = self._examples[index]
    return {"audio": read_wav(self._root / relpath), "label": np.int64(label)}

  def relpath(self, index: int) -> str:
    return self._examples[index][0]

  def __repr__(self) -> str:
    return f"WavFolderSource({str(self._root)!r}, split={self.split!r}, num_examples={len(self)})"


class SpeechCommandsSource:
  """What the model reads, built from any source of {'audio': [L] int16, 'label'} items.

  output='spectrogram': {'spectrogram': [161, 101] float32, 'label': int32}, computed on
  the host with `spectrogram`.
  output='waveform': {'audio': [num_samples] int16 zero-padded, 'length': int32,
  'label': int32}, for `spectrogram_jax` on the accelerator (a longer clip is an error).
  """

  def __init__(self, base, output: str = "spectrogram", num_samples: int = SAMPLE_RATE):
    if output not in ("spectrogram", "waveform"):
      raise ValueError(f"output={output!r}; use 'spectrogram' or 'waveform'.")
    self._base, self._output, self._num_samples = base, output, num_samples

  def __len__(self) -> int:
    return len(self._base)

  def __getitem__(self, index: int) -> dict[str, np.ndarray]:
    item = self._base[index]
    audio, label = np.asarray(item["audio"]), np.int32(item["label"])
    if self._output == "spectrogram":
      return {"spectrogram": spectrogram(audio), "label": label}
    if len(audio) > self._num_samples:
      raise ValueError(
          f"example {index} has {len(audio)} samples; raise num_samples={self._num_samples}.")
    padded = np.zeros(self._num_samples, np.int16)
    padded[: len(audio)] = audio
    return {"audio": padded, "length": np.int32(len(audio)), "label": label}

  def __repr__(self) -> str:
    return f"SpeechCommandsSource({self._base!r}, output={self._output!r})"


def speech_commands_sources(
    source: str | os.PathLike | None = None, *, data_dir=None, output: str = "spectrogram"
) -> dict[str, SpeechCommandsSource]:
  """{'train', 'validation', 'test'} sources straight from an extracted v0.01 folder.

  `source` / `data_dir` as in `find_release`. For the archive, prepare
  `SpeechCommandsV001` once and wrap its `tfds.data_source(...)` splits in
  `SpeechCommandsSource` instead (what `get_dataset(..., source='tfds')` does).
  """
  root = find_release(source, data_dir)
  if not root.is_dir():
    raise ValueError(
        f"{root} is an archive; extract it, or prepare the TFDS builder SpeechCommandsV001.")
  return {split: SpeechCommandsSource(WavFolderSource(root, split), output) for split in SPLITS}


# ---------------------------------------------------------------------------------
# TFDS builder.


class SpeechCommandsV001(tfds.core.GeneratorBasedBuilder):
  """TFDS builder `speech_commands_v0_01`: raw clips of the 30-word task, ArrayRecord.

  Reads the official archive or its extracted folder (`source`, default found by
  `find_release`); needs no TensorFlow:

    SpeechCommandsV001(data_dir=tfds_dir, source=path).download_and_prepare()
    splits = tfds.data_source("speech_commands_v0_01", data_dir=tfds_dir)
    train = SpeechCommandsSource(splits["train"])

  Examples ({'audio': [L] int16, 'label': int64}) are stored sorted by 'word/file.wav',
  the order of `WavFolderSource`.
  """

  name = "speech_commands_v0_01"
  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Official v0.01 splits; raw 16 kHz int16 clips."}
  # Where TFDS looks for a checksums file. Set explicitly because TFDS's own lookup
  # imports `importlib_resources`, which TFDS requires only on Python < 3.9.
  code_path = epath.Path(__file__)

  def __init__(
      self,
      *,
      source: str | os.PathLike | None = None,
      file_format: str = "array_record",
      **kwargs,
  ):
    """`source`: the v0.01 folder or archive (None: `find_release()`); other args as TFDS."""
    self._source = source
    super().__init__(file_format=file_format, **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description="Google Speech Commands v0.01, the 30 words (no background noise).",
        features=tfds.features.FeaturesDict({
            "audio": tfds.features.Tensor(shape=(None,), dtype=np.int16),
            "label": tfds.features.ClassLabel(names=WORDS),
        }),
        supervised_keys=("audio", "label"),
        homepage="https://arxiv.org/abs/1804.03209",
        disable_shuffling=True,  # keep the sorted-path order
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # The release is found locally (see find_release).
    path = find_release(self._source)
    return {split: self._generate_examples(path, split) for split in SPLITS}

  def _generate_examples(self, path: pathlib.Path, split: str):
    # Integer keys: TFDS then stores the examples in key order (disable_shuffling).
    if path.is_dir():
      for i, (relpath, label) in enumerate(list_folder(path, split)):
        yield i, {"audio": read_wav(path / relpath), "label": label}
    else:
      for i, _, label, audio in _iter_archive(path, split):
        yield i, {"audio": audio, "label": label}


def _add_channel(spectrograms: jax.Array) -> jax.Array:
  """[b, 161, 101] -> [b, 161, 101, 1] float32, the models' input."""
  return spectrograms.astype(jnp.float32)[..., None]


def _add_channel_train(rng: jax.Array, spectrograms: jax.Array) -> jax.Array:
  del rng  # The paper uses no augmentation on speech.
  return _add_channel(spectrograms)


@registry.register_dataset("speech_commands")
def _speech_commands(*, data_dir=None, source: str = "offline", release=None) -> registry.Dataset:
  """The 30-word task: {'spectrogram': [161, 101] float32, 'label': int32} splits.

  source='offline': the extracted folder `release` (default: `speech_commands_v0.01/`
  in `data_dir` or $MIXUP_JAX_DATA_DIR). source='tfds': the prepared
  `speech_commands_v0_01` TFDS dataset in the TFDS `data_dir`, prepared on first use
  from `release` (folder or archive; default found in $MIXUP_JAX_DATA_DIR).
  """
  if source == "tfds":
    splits = tfds.data_source(
        SpeechCommandsV001.name, data_dir=data_dir, builder_kwargs={"source": release})
    sources = {split: SpeechCommandsSource(splits[split]) for split in SPLITS}
  else:
    sources = speech_commands_sources(release, data_dir=data_dir)
  return registry.Dataset(
      name="speech_commands",
      train=sources["train"],
      validation=sources["validation"],
      test=sources["test"],
      num_classes=len(WORDS),
      input_shape=(NUM_BINS, NUM_FRAMES, 1),
      input_key="spectrogram",
      train_preprocess=_add_channel_train,
      eval_preprocess=_add_channel,
      info={"words": WORDS},
  )
