"""The Keras builder: exact parameter counts, names, preprocessing, seeds, tf_keras twin."""

import keras
import numpy as np
import pytest

from squish_tf.net import models
from squish_tf.net import spec as spec_lib

SMALL = spec_lib.NetSpec(input_shape=(32, 32, 3), num_classes=4, conv1_filters=8,
                         fires=(spec_lib.FireSpec(4, 6, 5), spec_lib.FireSpec(3, 4, 7),
                                spec_lib.FireSpec(5, 8, 8)),
                         pool_after=(1, 3), dropout_rate=0.5, kernel_initializer="he_uniform",
                         classifier_activation="linear", classifier_initializer="normal_0.01")


@pytest.mark.parametrize("spec", [
    spec_lib.squeezenet_v1_1(1000),
    spec_lib.squeezenet_v1_1(10, (64, 64, 3)),
    spec_lib.squishednet_base(10, (64, 64, 3)),
    SMALL,
])
def test_params_match_keras_and_output_shape(spec):
  model = models.build_model(spec, seed=0)
  assert model.count_params() == spec.keras_params()
  assert model.output_shape == (None, spec.num_classes)


def test_batch_norm_layers_and_counts():
  spec = SMALL.replace(batch_norm=True)
  model = models.build_model(spec, seed=0)
  names = [layer.name for layer in model.layers]
  for conv in ("conv1", "fire2_squeeze1x1", "fire4_expand3x3"):
    bn, relu = model.get_layer(conv + "_bn"), model.get_layer(conv + "_relu")
    assert isinstance(bn, keras.layers.BatchNormalization) and isinstance(relu, keras.layers.ReLU)
    assert bn.input is model.get_layer(conv).output and relu.input is bn.output
    assert not model.get_layer(conv).use_bias
  assert model.get_layer("conv10").use_bias and "conv10_bn" not in names
  bn_values = sum(4 * filters for _, filters in spec.prunable_layers())
  biases = sum(filters for _, filters in spec.prunable_layers())
  # Keras holds BN's four vectors instead of a bias; the deployed count folds them into one.
  assert model.count_params() == spec.keras_params() == spec.params() - biases + bn_values
  assert SMALL.params() == spec.params() and SMALL.keras_params() == SMALL.params()


def test_layer_names_are_stable():
  model = models.build_model(spec_lib.squeezenet_v1_1(10))
  names = {layer.name for layer in model.layers}
  for expected in ["conv1", "pool1", "fire2_squeeze1x1", "fire2_expand1x1", "fire2_expand3x3",
                   "fire2_concat", "pool3", "pool5", "fire9_expand3x3", "dropout", "conv10",
                   "avgpool", "softmax", "preprocess"]:
    assert expected in names
  convs = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
  assert convs == [layer.name for layer in spec_lib.squeezenet_v1_1(10).layer_shapes()]


def test_same_seed_same_weights_other_seed_other_weights():
  a = models.build_model(SMALL, seed=7).get_weights()
  b = models.build_model(SMALL, seed=7).get_weights()
  c = models.build_model(SMALL, seed=8).get_weights()
  assert all(np.array_equal(x, y) for x, y in zip(a, b))
  assert not all(np.array_equal(x, y) for x, y in zip(a, c))


def test_uint8_and_float_pixels_give_same_probabilities():
  model = models.build_model(SMALL, seed=1)
  pixels = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
  as_uint8 = np.asarray(model(pixels))
  as_float = np.asarray(model(pixels.astype(np.float32)))
  np.testing.assert_array_equal(as_uint8, as_float)
  np.testing.assert_allclose(as_float.sum(axis=1), 1.0, rtol=1e-5)


def test_logits_model_softmax_matches():
  probs = models.build_model(SMALL, seed=3, softmax=True)
  logits = models.build_model(SMALL, seed=3, softmax=False)
  x = np.random.default_rng(1).uniform(0, 255, (2, 32, 32, 3)).astype(np.float32)
  np.testing.assert_allclose(np.asarray(keras.ops.softmax(logits(x))), np.asarray(probs(x)),
                             rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize("batch_norm", [False, True])
def test_tf_keras_twin_same_outputs_after_copy_by_name(batch_norm):
  tf_keras = pytest.importorskip("tf_keras")
  spec = SMALL.replace(batch_norm=batch_norm)
  source = models.build_model(spec, seed=5)
  twin = models.build_model(spec, keras_module=tf_keras)
  assert twin.count_params() == spec.keras_params()
  assert [l.name for l in twin.layers] == [l.name for l in source.layers]
  copied = models.copy_weights_by_name(source, twin)
  assert copied == len(spec.layer_shapes()) * (2 if batch_norm else 1) - batch_norm
  x = np.random.default_rng(2).uniform(0, 255, (4, 32, 32, 3)).astype(np.float32)
  np.testing.assert_allclose(twin(x, training=False).numpy(), np.asarray(source(x)),
                             rtol=1e-5, atol=1e-6)


def test_copy_weights_refuses_shape_mismatch():
  other = SMALL.replace(conv1_filters=9)
  with pytest.raises(ValueError, match="Layer 'conv1'"):
    models.copy_weights_by_name(models.build_model(SMALL), models.build_model(other))


def test_build_model_rejects_non_spec():
  with pytest.raises(ValueError, match="expects a squish_tf.net.spec.NetSpec, got dict"):
    models.build_model({"num_classes": 10})
