"""Tests of mixup_jax.data.speech on real v0.01 clips: splits, WAVs, spectrograms, TFDS.

The committed sample (tests/testdata) holds 50 clips; the official lists' counts and the
300-clip offline subset are checked when MIXUP_JAX_DATA_DIR points at the full copies.
"""

import collections
import re
import tarfile
import wave

import numpy as np
import pytest
import scipy.signal
import tensorflow_datasets as tfds

import mixup_jax.data as data_lib
from mixup_jax.data import speech



@pytest.fixture(scope="module")
def release(data_dir):
  return data_dir / "speech_commands_subset" / "speech_commands_v0.01"


@pytest.fixture(scope="module")
def folder_splits(release):
  return {split: speech.WavFolderSource(release, split) for split in speech.SPLITS}


@pytest.fixture(scope="module")
def clips(folder_splits):
  """Every training clip: int16 arrays of 12288..16000 samples."""
  train = folder_splits["train"]
  return [train[i]["audio"] for i in range(len(train))]


def _check_splits_follow_the_lists(release, folder_splits):
  validation = set((release / "validation_list.txt").read_text().split())
  testing = set((release / "testing_list.txt").read_text().split())
  paths = {split: {s.relpath(i) for i in range(len(s))} for split, s in folder_splits.items()}
  on_disk = {str(p.relative_to(release)) for p in release.glob("*/*.wav")}
  assert paths["validation"] == validation & on_disk and paths["test"] == testing & on_disk
  assert paths["train"] == on_disk - validation - testing
  return paths


def test_splits_follow_the_lists(release, folder_splits):
  paths = _check_splits_follow_the_lists(release, folder_splits)
  assert {p.split("/")[0] for p in paths["train"]} == set(speech.WORDS)


def test_full_subset_splits_follow_the_official_lists(full_data_dir):
  release = full_data_dir / "speech_commands_subset" / "speech_commands_v0.01"
  folder_splits = {split: speech.WavFolderSource(release, split) for split in speech.SPLITS}
  sizes = {split: len(source) for split, source in folder_splits.items()}
  assert sizes == {"train": 205, "validation": 44, "test": 51}
  validation = set((release / "validation_list.txt").read_text().split())
  testing = set((release / "testing_list.txt").read_text().split())
  assert len(validation) == 6798 and len(testing) == 6835  # the official v0.01 lists
  paths = _check_splits_follow_the_lists(release, folder_splits)
  per_word = collections.Counter(p.split("/")[0] for ps in paths.values() for p in ps)
  assert per_word == {word: 10 for word in speech.WORDS}


def test_words_are_sorted_and_labels_index_them(folder_splits):
  assert list(speech.WORDS) == sorted(speech.WORDS) and len(speech.WORDS) == 30
  source = folder_splits["test"]
  for i in range(len(source)):
    assert speech.WORDS[int(source[i]["label"])] == source.relpath(i).split("/")[0]


def test_wavs_are_16khz_mono_int16(clips, tmp_path):
  assert all(c.dtype == np.int16 for c in clips)
  lengths = [len(c) for c in clips]
  assert max(lengths) == 16000 and min(lengths) >= 12288
  stereo = tmp_path / "stereo.wav"
  with wave.open(str(stereo), "wb") as w:
    w.setnchannels(2), w.setsampwidth(2), w.setframerate(16000)
    w.writeframes(np.zeros(200, np.int16).tobytes())
  with pytest.raises(ValueError, match=r"\(2, 2, 16000\)"):
    speech.read_wav(stereo)


def test_spectrogram_shape_and_per_utterance_zscore(clips):
  for clip in clips[:20]:
    s = speech.spectrogram(clip)
    assert s.shape == (161, 101) and s.dtype == np.float32
    assert abs(s.mean()) < 1e-5 and abs(s.std(ddof=1) - 1) < 1e-5
  short = next(c for c in clips if len(c) < 16000)
  s = speech.spectrogram(short)
  padded_columns = s[:, 1 + len(short) // 160:]  # frames after the clip: zeros before z-scoring
  assert padded_columns.size and np.all(padded_columns == padded_columns[0, 0])
  silent = speech.spectrogram(np.zeros(16000, np.int16))
  assert np.all(silent == 0)


def test_spectrogram_matches_an_independent_centred_stft(clips):
  """scipy's STFT with even (reflect) extension is librosa's center=True STFT up to scale."""
  for clip in (clips[0], next(c for c in clips if len(c) < 16000)):
    x = clip / 32768.0
    window = scipy.signal.get_window("hamming", 320)
    _, _, z = scipy.signal.stft(x, window=window, nperseg=320, noverlap=160, boundary="even",
                                padded=False, detrend=False)
    assert z.shape == (161, 1 + len(x) // 160)
    expected = np.zeros((161, 101))
    expected[:, : z.shape[1]] = np.log1p(np.abs(z) * window.sum())[:, :101]
    expected = (expected - expected.mean()) / expected.std(ddof=1)
    np.testing.assert_allclose(speech.spectrogram(clip), expected, atol=1e-5)


def test_jax_spectrogram_equals_numpy(clips):
  waveform = speech.SpeechCommandsSource(_ListSource(clips), output="waveform")
  items = [waveform[i] for i in range(len(waveform))]
  audio = np.stack([item["audio"] for item in items])
  length = np.array([item["length"] for item in items])
  assert audio.shape == (len(clips), 16000) and (length < 16000).any()
  got = np.asarray(speech.spectrogram_jax(audio, length))
  expected = np.stack([speech.spectrogram(c) for c in clips])
  assert got.shape == (len(clips), 161, 101) and got.dtype == np.float32
  np.testing.assert_allclose(got, expected, atol=1e-4)
  nested = speech.spectrogram_jax(audio[:4].reshape(2, 2, 16000), length[:4].reshape(2, 2))
  np.testing.assert_allclose(np.asarray(nested).reshape(4, 161, 101), expected[:4], atol=1e-4)
  with pytest.raises(ValueError, match="length shape"):
    speech.spectrogram_jax(audio[:2], length[:3])
  with pytest.raises(ValueError, match="num_samples"):
    speech.SpeechCommandsSource(_ListSource(clips), output="waveform", num_samples=12000)[0]


class _ListSource:
  def __init__(self, clips):
    self._clips = clips

  def __len__(self):
    return len(self._clips)

  def __getitem__(self, i):
    return {"audio": self._clips[i], "label": np.int64(0)}


def test_unknown_word_folder_is_an_error(release, tmp_path):
  for name in ("validation_list.txt", "testing_list.txt"):
    (tmp_path / name).write_text((release / name).read_text())
  (tmp_path / "backward").mkdir()  # a v0.02 word
  with pytest.raises(ValueError, match="'backward' is not one of the 30 v0.01 words"):
    speech.list_folder(tmp_path, "train")


def test_tfds_builder_from_folder_and_from_archive(release, folder_splits, tmp_path):
  """Run in the default install (no TensorFlow), this shows that TFDS needs none here."""
  archive = tmp_path / "speech_commands_v0.01.tar"
  with tarfile.open(archive, "w") as tar:  # the official layout: ./word/file.wav at the top
    tar.add(release, arcname=".")
  inputs = ((release, tmp_path / "from_folder"), (archive, tmp_path / "from_archive"))
  for input_path, out in inputs:
    speech.SpeechCommandsV001(data_dir=out, source=input_path).download_and_prepare()
    splits = tfds.data_source("speech_commands_v0_01", data_dir=out, download=False)
    for split in ("validation", "test"):
      expected = folder_splits[split]
      assert len(splits[split]) == len(expected)
      for i in range(0, len(expected), 7):
        np.testing.assert_array_equal(splits[split][i]["audio"], expected[i]["audio"])
        assert splits[split][i]["label"] == expected[i]["label"]
    assert len(splits["train"]) == len(folder_splits["train"])
  ds = data_lib.get_dataset("speech_commands", source="tfds", data_dir=tmp_path / "from_archive")
  assert (ds.num_train, ds.num_validation, ds.num_test) == tuple(
      len(folder_splits[s]) for s in ("train", "validation", "test"))
  expected = speech.spectrogram(folder_splits["test"][3]["audio"])
  np.testing.assert_array_equal(ds.test[3]["spectrogram"], expected)


def test_registry_dataset_feeds_the_loader(data_dir, release, folder_splits):
  ds = data_lib.get_dataset("speech_commands", data_dir=data_dir, release=release)
  assert (ds.num_train, ds.num_validation, ds.num_test) == tuple(
      len(folder_splits[s]) for s in ("train", "validation", "test"))
  assert (ds.num_classes, ds.input_key, ds.input_shape) == (30, "spectrogram", (161, 101, 1))
  batch = next(data_lib.train_iterator(ds.train, global_batch_size=4, seed=0))
  assert batch["spectrogram"].shape == (4, 161, 101) and batch["label"].dtype == np.int32
  assert ds.eval_preprocess(batch["spectrogram"]).shape == (4, 161, 101, 1)
  with pytest.raises(FileNotFoundError, match=re.escape(speech.ARCHIVE_URL)):
    data_lib.get_dataset("speech_commands", data_dir=data_dir)  # never the subset silently
