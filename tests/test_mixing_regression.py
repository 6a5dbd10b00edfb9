"""Each mixing method's short real-data run ends as it did when it was recorded.

The cases and how to record them: tests/helpers/mixing_regression.py. The committed
results of experiments/ were trained by the same code paths, so a refactoring of the
mixing options that keeps these runs bitwise keeps those results valid.
"""

import math

import pytest

from tests.helpers import mixing_regression

_RECORDINGS = mixing_regression.recordings()
_HERE = [r for r in _RECORDINGS if r["platform"] == mixing_regression.platform_id()]


def test_every_platform_records_every_case():
  assert _RECORDINGS
  for recording in _RECORDINGS:
    assert sorted(recording["cases"]) == sorted(mixing_regression.CASES), recording["platform"]


@pytest.mark.parametrize("case", sorted(mixing_regression.CASES))
def test_run_matches_its_recording(case, data_dir):
  outcome = mixing_regression.run_case(case, str(data_dir))
  if _HERE:
    assert outcome == _HERE[0]["cases"][case], f"{case}: the run differs from its recording"
    return
  # Another CPU or jaxlib may round differently: the draws must not move, the losses
  # only by rounding (see tests/helpers/mixing_regression.py).
  recorded = _RECORDINGS[0]["cases"][case]
  assert outcome["train_lambda"] == pytest.approx(recorded["train_lambda"], abs=1e-6), case
  for name in ("test_loss", "train_loss"):
    assert outcome[name] == pytest.approx(recorded[name], rel=5e-3), (case, name)
  assert math.isclose(outcome["final_test_error"], recorded["final_test_error"],
                      abs_tol=1.1), case  # one of the 96 test images
