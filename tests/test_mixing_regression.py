"""Each mixing method's short real-data run ends as it did when it was recorded.

The cases and how to record them: tests/helpers/mixing_regression.py. The committed
results of experiments/ were trained by the same code paths, so a refactoring of the
mixing options that keeps these runs bitwise keeps those results valid.
"""

import json
import math

import pytest

from tests.helpers import mixing_regression

_RECORDED = json.loads(mixing_regression.FIXTURE.read_text())
_SAME_PLATFORM = _RECORDED["platform"] == mixing_regression.platform_id()


def test_every_case_is_recorded():
  assert sorted(_RECORDED["cases"]) == sorted(mixing_regression.CASES)


@pytest.mark.parametrize("case", sorted(mixing_regression.CASES))
def test_run_matches_its_recording(case, data_dir):
  recorded = _RECORDED["cases"][case]
  outcome = mixing_regression.run_case(case, str(data_dir))
  if _SAME_PLATFORM:
    assert outcome == recorded, f"{case}: the run differs from its recording"
    return
  # Another CPU or jaxlib may round differently: a moved draw still shows by far more.
  for name in ("final_test_error", "test_loss"):
    assert math.isclose(outcome[name], recorded[name], rel_tol=1e-4), (case, name)
  for name in ("train_loss", "train_lambda"):
    assert len(outcome[name]) == len(recorded[name])
    for got, want in zip(outcome[name], recorded[name]):
      assert math.isclose(got, want, rel_tol=1e-4, abs_tol=1e-6), (case, name, got, want)
