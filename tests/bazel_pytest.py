"""Runs a pytest file as a Bazel py_test: `bazel test //:test_spec` -> pytest tests/test_spec.py."""

import sys

import pytest

if __name__ == "__main__":
  sys.exit(pytest.main(["-q", *sys.argv[1:]]))
