"""Registers the session fixtures of t5x_testlib for the t5x tests."""
from t5x_testlib import initial_checkpoint, reference_run  # pylint: disable=unused-import
