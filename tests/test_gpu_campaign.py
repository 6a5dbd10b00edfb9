"""The GPU campaign's dry run: every part at tiny sizes, so the script cannot rot."""

import json
import os
import pathlib
import subprocess
import sys

import pytest

_REPO = pathlib.Path(__file__).resolve().parents[1]


def test_dry_run_writes_every_part(tmp_path, data_dir):
  pytest.importorskip("torch")
  # The GPU machines' path: the shell script, its check of what is missing (nothing
  # here: this environment is the "image"), the project from the checkout.
  bin_dir = str(pathlib.Path(sys.executable).parent)
  env = {**os.environ, "XLA_FLAGS": "", "MIXUP_JAX_DATA_DIR": str(data_dir), "DRY_RUN": "1",
         "OUT": str(tmp_path), "PATH": bin_dir + os.pathsep + os.environ["PATH"],
         "VIRTUAL_ENV": str(pathlib.Path(sys.prefix))}
  out = subprocess.run(["bash", "benchmarks/gpu_campaign.sh", "320"], cwd=_REPO, env=env,
                       capture_output=True, text=True, timeout=600)
  assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
  results = json.loads((tmp_path / "results.json").read_text())
  assert results["dry_run"] and set(results["parts"]) == {"throughput", "mix", "recipe"}
  assert all(part["status"] == "done" for part in results["parts"].values()), results
  rates = results["parts"]["throughput"]["result"]["img_per_s"]["batch 8"]
  assert {"ours float32, ERM", "ours bfloat16, mixup", "PyTorch eager fp32, mixup"} <= set(rates)
  assert all(rate > 0 for rate in rates.values())
  assert results["parts"]["mix"]["result"]["mix_ms"] > 0
  for method in ("ERM", "mixup"):
    run = results["parts"]["recipe"]["result"][method]
    assert run["epochs_run"] > 0 and run["projected_200_epochs_s"] > 0
    assert run["test_error_per_epoch"], run
  assert "# GPU campaign" in (tmp_path / "table.md").read_text()
  assert "installing what the image lacks" not in out.stdout  # the image's packages, as they are
