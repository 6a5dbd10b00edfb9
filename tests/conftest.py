"""Test setup: 8 CPU devices and the offline data directory, before JAX is imported."""

import os
import pathlib

os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=8"
).strip()
os.environ.setdefault("JAX_PLATFORMS", "cpu")

_REPO = pathlib.Path(__file__).resolve().parents[1]
os.environ.setdefault("MIXUP_JAX_DATA_DIR", str(_REPO.parent / "shared" / "data"))
# Absolute, so that subprocesses and notebook kernels started in other folders find it
# (the README's command passes a relative ../shared/data).
os.environ["MIXUP_JAX_DATA_DIR"] = str(pathlib.Path(os.environ["MIXUP_JAX_DATA_DIR"]).resolve())

import jax  # noqa: E402  (imported after the flags above on purpose)
import pytest  # noqa: E402


@pytest.fixture(scope="session")
def data_dir() -> pathlib.Path:
  """The offline copies of the paper's datasets (see docs/data.md)."""
  path = pathlib.Path(os.environ["MIXUP_JAX_DATA_DIR"])
  if not path.is_dir():
    pytest.fail(f"MIXUP_JAX_DATA_DIR={path} is not a directory; point it at the offline data.")
  return path


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
