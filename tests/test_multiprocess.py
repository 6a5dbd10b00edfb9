"""Two `jax.distributed` processes with 4 CPU devices each run the step of one process.

Each process runs tests/parallel_scenario.py: it joins a local coordinator (gloo
collectives), starts from the step-0 state the test wrote, feeds its own rows of the
fixed global batch through `jax.make_array_from_process_local_data` (pmap: to its
local devices), trains and evaluates in the "pmap", "sharded" and "shard_map" modes
over the 8 devices of both processes, and writes what it got. Both processes must
agree with the single-process 8-device run and with the 1-device run.
"""

import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

import parallel_scenario as scenario

NUM_PROCESSES = 2
LOCAL_DEVICES = 4
MODES = ("pmap", "sharded", "shard_map")
TIMEOUT_S = 420  # a hung collective fails the test instead of blocking CI
RTOL, ATOL = 2e-5, 2e-6


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


@pytest.fixture(scope="module")
def process_results(tmp_path_factory, data_dir):
  """{(mode, process_id): flat results} from NUM_PROCESSES worker processes."""
  out = tmp_path_factory.mktemp("multiprocess")
  script = pathlib.Path(scenario.__file__)
  env = dict(os.environ, MIXUP_JAX_DATA_DIR=str(data_dir))
  env.pop("XLA_FLAGS", None)  # the worker asks for LOCAL_DEVICES itself
  init_file = out / "initial_state.npz"
  scenario.write_initial_state(init_file)
  port = _free_port()
  logs = [open(out / f"process{i}.log", "w") for i in range(NUM_PROCESSES)]
  workers = [
      subprocess.Popen(
          [sys.executable, str(script), f"--process_id={i}",
           f"--num_processes={NUM_PROCESSES}", f"--port={port}",
           f"--local_devices={LOCAL_DEVICES}", f"--out={out}", f"--modes={','.join(MODES)}",
           f"--init_file={init_file}"],
          env=env, stdout=logs[i], stderr=subprocess.STDOUT,
      )
      for i in range(NUM_PROCESSES)
  ]
  try:
    codes = [w.wait(timeout=TIMEOUT_S) for w in workers]
  except subprocess.TimeoutExpired:
    codes = None
  finally:
    for w in workers:
      if w.poll() is None:
        w.kill()
        w.wait()
    for log in logs:
      log.close()
  output = "\n".join(
      f"--- process {i} ---\n" + (out / f"process{i}.log").read_text()[-3000:]
      for i in range(NUM_PROCESSES)
  )
  if codes is None:
    pytest.fail(f"workers did not finish within {TIMEOUT_S} s:\n{output}")
  if any(codes):
    pytest.fail(f"workers exited with {codes}:\n{output}")
  results = {
      (mode, i): dict(np.load(out / f"{mode}_process{i}.npz"))
      for mode in MODES
      for i in range(NUM_PROCESSES)
  }
  rows = {("shard_map rows", i): np.load(out / f"shard_map_rows{i}.npy")
          for i in range(NUM_PROCESSES)}
  return results | rows


def _assert_same(actual: dict, expected: dict, what: str) -> None:
  assert actual.keys() == expected.keys(), what
  for name, value in expected.items():
    np.testing.assert_allclose(
        actual[name], value, rtol=RTOL, atol=ATOL, err_msg=f"{what}: {name}"
    )


@pytest.mark.parametrize("mode", MODES)
def test_two_processes_match_one_process(mode, process_results, data_dir):
  one_device = scenario.flatten(scenario.run("jit", data_dir))
  eight_devices = scenario.flatten(scenario.run(mode, data_dir))
  for i in range(NUM_PROCESSES):
    got = process_results[(mode, i)]
    _assert_same(got, eight_devices, f"process {i} vs one process, 8 devices")
    _assert_same(got, one_device, f"process {i} vs one device")
  assert float(got["['eval']['count']"]) == scenario.EVAL_ROWS


def test_rows_follow_an_interleaved_mesh(process_results):
  # The shard_map run's mesh alternates the processes' devices, so each process
  # holds every other block of 4 rows, not a contiguous half (and still matches
  # one process above).
  blocks = [process_results[("shard_map rows", i)].reshape(-1, 4)[:, 0] // 4
            for i in range(NUM_PROCESSES)]
  assert sorted(np.concatenate(blocks).tolist()) == list(range(8))
  assert blocks[0].tolist() == [0, 2, 4, 6] and blocks[1].tolist() == [1, 3, 5, 7]
