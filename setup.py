"""Installs mixup_jax: `pip install -e .` (see README.md for the extras)."""

import pathlib
import re

import setuptools


def _version() -> str:
  """mixup_jax.__version__, read from the source (importing it would need JAX)."""
  init = (pathlib.Path(__file__).parent / "mixup_jax" / "__init__.py").read_text()
  return re.search(r'^__version__ = "([^"]+)"', init, re.M).group(1)


_CORE = [
    "jax>=0.10",
    "flax>=0.10",
    "optax>=0.2",
    "chex>=0.1.87",
    "orbax-checkpoint>=0.11",
    "tensorflow-datasets>=4.9.7",
    "grain>=0.2.10",
    "ml_collections>=1.0",
    "numpy>=1.26",
    "absl-py>=2.0",
    "etils[epath]>=1.5",  # workdirs on gs:// and other buckets (Orbax depends on it too)
    "pillow>=10",  # ImageNet JPEG decoding and resized crops without TensorFlow
    "importlib_resources>=6",  # needed by tensorflow-datasets to prepare datasets
]
_EXPERIMENTS = [
    "matplotlib>=3.8",  # results plots and notebooks
    "scikit-learn>=1.4",  # offline demo data (digits) that ships in the wheel
    "tensorboardX>=2.6",  # TensorBoard event files without TensorFlow
]
_TEST = _EXPERIMENTS + [
    "pytest>=8",
    "pytest-xdist>=3.5",  # the suite on 2 processes: its compilations are single-threaded
    "scipy>=1.11",  # Kolmogorov-Smirnov tests of the sampled weights
    "nbmake>=1.5",  # executes the notebooks in colabs/
    "nbclient>=0.9",  # (comes with nbmake; the notebook test imports it directly)
    "nbformat>=5.9",
    "ruff>=0.6",  # the linter; ruff.toml holds the rules the code follows
]

setuptools.setup(
    name="mixup_jax",
    version=_version(),
    description="mixup (Zhang et al., ICLR 2018) in JAX/Flax, with the paper's experiments.",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    # The library only: experiments/, benchmarks/ and tools/ run from a checkout
    # (`python -m experiments.main` in its root), so that no top-level `experiments`
    # package lands in users' environments beside their own.
    packages=setuptools.find_packages(include=["mixup_jax", "mixup_jax.*"]),
    package_data={"mixup_jax": ["py.typed"]},
    install_requires=_CORE,
    extras_require={
        "experiments": _EXPERIMENTS,
        "test": _TEST,
        "tf": ["tensorflow>=2.16"],
        # gs:// workdirs: epath reads and writes buckets through gcsfs, TensorBoard
        # events (tensorboardX) through google-cloud-storage.
        "gcs": ["gcsfs>=2024.2", "google-cloud-storage>=2.14"],
    },
)
