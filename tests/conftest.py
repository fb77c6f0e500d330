"""Shared pytest set-up: quiet TensorFlow, two logical CPUs, shared fixtures."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices let the mirrored strategy run with two replicas on a
# CPU-only machine. This must happen before TensorFlow initialises its runtime,
# hence here, at collection time, for the whole session.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()])
