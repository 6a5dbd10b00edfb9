"""The suite's own setup: 8 CPU devices, patient collectives, the committed samples."""

import os

import jax

from experiments import cpu_flags


def test_eight_devices_and_collectives_that_outlast_a_lagging_device():
  assert jax.device_count() == 8
  assert cpu_flags.PATIENT_COLLECTIVES in os.environ["XLA_FLAGS"]
  assert cpu_flags.with_patient_collectives("--x --xla_cpu_collective_call_terminate_timeout_seconds=5") == (
      "--x --xla_cpu_collective_call_terminate_timeout_seconds=5")  # a user's value stays
