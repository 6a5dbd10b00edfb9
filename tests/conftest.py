"""Test setup: 8 CPU devices and the offline data directory, before JAX is imported."""

import os
import pathlib

from experiments import cpu_flags  # noqa: E402  (no JAX import)

# 8 simulated devices, and collectives that wait for a device thread the loaded CPU
# holds back instead of aborting the process after XLA's default 40 s.
_DEVICES = "--xla_force_host_platform_device_count=8"
_FLAGS = os.environ.get("XLA_FLAGS", "")
os.environ["XLA_FLAGS"] = cpu_flags.with_patient_collectives(
    _FLAGS if _DEVICES in _FLAGS else f"{_FLAGS} {_DEVICES}".strip())
os.environ.setdefault("JAX_PLATFORMS", "cpu")

_REPO = pathlib.Path(__file__).resolve().parents[1]
# Every test reads the small samples committed under tests/testdata (made by
# tools/make_test_data.py), so that a fresh clone passes; the few tests that need the
# complete datasets ask for `full_data_dir`, which is $MIXUP_JAX_DATA_DIR when set and
# a skip otherwise. The variable is pointed at the samples for the library's own
# default and for subprocesses and notebook kernels (absolute, as they start elsewhere).
TEST_DATA_DIR = _REPO / "tests" / "testdata"
# pytest-xdist's workers inherit this process's environment, so the user's value travels
# to them under a name of its own ('' when it was not set).
_FULL = os.environ.setdefault("MIXUP_JAX_SUITE_FULL_DATA_DIR",
                              os.environ.get("MIXUP_JAX_DATA_DIR", ""))
FULL_DATA_DIR = pathlib.Path(_FULL).resolve() if _FULL else None
os.environ["MIXUP_JAX_DATA_DIR"] = str(TEST_DATA_DIR)

import jax  # noqa: E402  (imported after the flags above on purpose)
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
  """The committed samples of the offline datasets (tests/testdata/README.md)."""
  return TEST_DATA_DIR


@pytest.fixture(scope="session")
def full_data_dir() -> pathlib.Path:
  """The complete offline datasets (docs/data.md), for tests whose point needs them.

  Skips with a reason that names the variable when MIXUP_JAX_DATA_DIR is not set.
  Pass the path on explicitly: the variable itself points at the samples.
  """
  if FULL_DATA_DIR is None:
    pytest.skip("needs the complete datasets: set MIXUP_JAX_DATA_DIR (docs/data.md)")
  if not FULL_DATA_DIR.is_dir():
    pytest.fail(f"MIXUP_JAX_DATA_DIR={FULL_DATA_DIR} is not a directory; point it at the "
                "offline data (docs/data.md) or unset it to skip the full-data tests.")
  return FULL_DATA_DIR


def pytest_sessionstart(session):
  del session
  assert jax.device_count() == 8, f"tests expect 8 CPU devices, got {jax.devices()}"


@pytest.fixture
def compilation_cache(tmp_path):
  """A persistent XLA cache, so that the two seeds of a method compile once.

  JAX opens the cache at the first compilation after the directory is set and keeps
  it for the process; later tests can only gain from that (entries are keyed by the
  program), and the thresholds are restored.
  """
  previous = (jax.config.jax_compilation_cache_dir,
              jax.config.jax_persistent_cache_min_compile_time_secs)
  jax.config.update("jax_compilation_cache_dir", str(tmp_path / "xla_cache"))
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
  yield
  jax.config.update("jax_compilation_cache_dir", previous[0])
  jax.config.update("jax_persistent_cache_min_compile_time_secs", previous[1])
