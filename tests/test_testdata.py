"""The committed samples (tests/testdata) are intact and are what the script makes.

Every test that reads data reads these samples, so a fresh clone passes without the
full offline copies; tools/make_test_data.py makes them from those copies.
"""

import hashlib
import subprocess
import sys


from conftest import TEST_DATA_DIR


def _sums(folder):
  lines = (folder / "SHA256SUMS").read_text().splitlines()
  return dict(reversed(line.split("  ", 1)) for line in lines)


def test_every_sample_file_matches_its_checksum():
  sums = _sums(TEST_DATA_DIR)
  on_disk = {str(p.relative_to(TEST_DATA_DIR)) for p in TEST_DATA_DIR.rglob("*")
             if p.is_file() and p.name not in ("SHA256SUMS", "README.md")}
  assert on_disk == set(sums)
  for name, digest in sums.items():
    assert hashlib.sha256((TEST_DATA_DIR / name).read_bytes()).hexdigest() == digest, name
  total = sum((TEST_DATA_DIR / name).stat().st_size for name in sums)
  assert total < 6e6, f"the samples grew to {total / 1e6:.1f} MB; keep them to a few MB"


def test_the_script_makes_exactly_the_committed_samples(full_data_dir, tmp_path):
  subprocess.run([sys.executable, "tools/make_test_data.py", f"--data_dir={full_data_dir}",
                  f"--out={tmp_path / 'testdata'}"], cwd=TEST_DATA_DIR.parents[1], check=True,
                 capture_output=True, timeout=300)
  assert _sums(tmp_path / "testdata") == _sums(TEST_DATA_DIR)
  assert (tmp_path / "testdata" / "README.md").read_text() == (
      TEST_DATA_DIR / "README.md").read_text()
