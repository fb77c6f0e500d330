"""Surgery: the dense child equals the parent with removed filters zeroed, exactly."""

import keras
import numpy as np
import pytest

from squish_tf.evolve import encoding as syn
from squish_tf.evolve import environment as environment_lib
from squish_tf.evolve import surgery
from squish_tf.net import batch_norm, models
from squish_tf.net import spec as spec_lib

SMALL = spec_lib.NetSpec(input_shape=(32, 32, 3), num_classes=4, conv1_filters=8,
                         fires=(spec_lib.FireSpec(4, 6, 5), spec_lib.FireSpec(3, 4, 7),
                                spec_lib.FireSpec(5, 8, 8)),
                         pool_after=(1, 3), dropout_rate=0.5, kernel_initializer="he_uniform",
                         classifier_activation="linear", classifier_initializer="normal_0.01")
V1_1 = spec_lib.squeezenet_v1_1(10, (64, 64, 3))
SMALL_BN = SMALL.replace(batch_norm=True)


def random_parent(spec, seed, softmax=False):
  """A parent with random kernels AND random nonzero biases, so bias slicing is tested.

  With batch norm, every BN gets random gamma, beta and moving statistics, so
  slicing all four (and folding them) is tested too.
  """
  model = models.build_model(spec, seed=seed, softmax=softmax)
  rng = np.random.default_rng(seed)
  for name in [layer.name for layer in spec.layer_shapes()]:
    layer = model.get_layer(name)
    weights = layer.get_weights()
    if len(weights) == 2:
      kernel, bias = weights
      layer.set_weights([kernel, rng.normal(0.05, 0.1, bias.shape).astype(np.float32)])
    else:
      n = weights[0].shape[-1]
      model.get_layer(name + models.BN_SUFFIX).set_weights(
          [rng.uniform(0.5, 1.5, n), rng.normal(0.0, 0.3, n), rng.normal(0.0, 0.3, n),
           rng.uniform(0.5, 2.0, n)])
  return model


def pixels(spec, seed=0, batch=3):
  return np.random.default_rng(seed).uniform(0, 255, (batch,) + spec.input_shape).astype(
      np.float32)


def assert_close(actual, reference):
  actual, reference = np.asarray(actual), np.asarray(reference)
  assert np.abs(reference).max() > 0  # a vacuous all-zero comparison proves nothing
  np.testing.assert_allclose(actual, reference, rtol=1e-5, atol=1e-5 * np.abs(reference).max())


def params_by_hand(input_channels, classes, conv1, fires):
  """SqueezeNet parameter count from layer widths, written out independently of spec.py."""
  total = 3 * 3 * input_channels * conv1 + conv1
  previous = conv1
  for squeeze, e1, e3 in fires:
    total += previous * squeeze + squeeze
    total += squeeze * e1 + e1 + 3 * 3 * squeeze * e3 + e3
    previous = e1 + e3
  return total + previous * classes + classes


def widths(spec, survivors):
  count = lambda name: len(survivors[name])
  return (count("conv1"), [(count(f"fire{n}_squeeze1x1"), count(f"fire{n}_expand1x1"),
                           count(f"fire{n}_expand3x3")) for n, _ in spec.numbered_fires()])


def all_kept(spec):
  return {name: np.arange(n) for name, n in spec.prunable_layers()}


def edge_masks(spec):
  """Hand-made masks: floors at one filter, concat order corners, keep-all-but-one."""
  last_e1_first_e3 = {}
  first_e1_last_e3 = {}
  for name, n in spec.prunable_layers():
    last_e1_first_e3[name] = [n - 1] if "expand1x1" in name else [0]
    first_e1_last_e3[name] = [n - 1] if "expand3x3" in name else [0]
  all_but_one = {name: np.delete(np.arange(n), n // 2) if n > 1 else [0]
                 for name, n in spec.prunable_layers()}
  only_expands = dict(all_kept(spec))  # prune only the concat halves, unevenly
  for number, fire in spec.numbered_fires():
    only_expands[f"fire{number}_expand1x1"] = np.arange(1, fire.expand1x1, 2)
    only_expands[f"fire{number}_expand3x3"] = np.arange(0, fire.expand3x3, 3)
  return [last_e1_first_e3, first_e1_last_e3, all_but_one, only_expands]


def sampled_masks(spec, model, draws, seed):
  strengths = surgery.layer_strengths(model, spec)
  rng = np.random.default_rng(seed)
  config = syn.SynthesisConfig(min_filters=1, min_fraction=0.0)
  return [syn.sample_survivors(spec, strengths, environment_lib.environment_factors(
      spec, syn.SynthesisConfig(env_mode="constant", env_factor=factor)), rng, config)
          for factor in np.linspace(0.3, 1.0, draws)]


@pytest.mark.parametrize("spec", [SMALL, SMALL_BN], ids=["plain", "batch_norm"])
def test_child_equals_zeroed_parent_for_many_masks(spec):
  parent = random_parent(spec, seed=1)
  x = pixels(spec)
  for survivors in edge_masks(spec) + sampled_masks(spec, parent, draws=5, seed=0):
    child, child_spec = surgery.build_child(parent, spec, survivors, softmax=False, seed=0)
    reference = surgery.zero_removed(parent, spec, survivors)
    assert_close(child(x), reference(x))
    assert child.count_params() == child_spec.keras_params()
    # The reference's removed filters really are zero once deployed (folded).
    folded = batch_norm.folded_weights(reference, spec)
    for name, kept in syn.check_survivors(spec, survivors).items():
      removed = np.setdiff1d(np.arange(folded[name][1].shape[0]), kept)
      assert not np.any(folded[name][0][..., removed]) and not np.any(folded[name][1][removed])


def test_batch_norm_child_folds_to_the_parents_folded_slices():
  parent = random_parent(SMALL_BN, seed=11)
  survivors = sampled_masks(SMALL_BN, parent, draws=1, seed=5)[0]
  child, child_spec = surgery.build_child(parent, SMALL_BN, survivors, softmax=False)
  plain_parent = batch_norm.deployed_model(parent, SMALL_BN)
  plain_child, _ = surgery.build_child(plain_parent, batch_norm.deployed_spec(SMALL_BN),
                                       survivors, softmax=False)
  # Surgery commutes with folding: fold-then-cut equals cut-then-fold.
  cut_then_fold = batch_norm.folded_weights(child, child_spec)
  fold_then_cut = batch_norm.folded_weights(plain_child, batch_norm.deployed_spec(child_spec))
  for name in cut_then_fold:
    for a, b in zip(cut_then_fold[name], fold_then_cut[name]):
      np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
  x = pixels(SMALL_BN, seed=3)
  assert_close(batch_norm.deployed_model(child, child_spec)(x), child(x))


def test_keeping_everything_reproduces_the_parent():
  parent = random_parent(SMALL, seed=2)
  child, child_spec = surgery.build_child(parent, SMALL, all_kept(SMALL), softmax=False)
  assert child_spec.architecture_key() == SMALL.architecture_key()
  for a, b in zip(child.get_weights(), parent.get_weights()):
    np.testing.assert_array_equal(a, b)
  x = pixels(SMALL, seed=4)
  np.testing.assert_allclose(np.asarray(child(x)), np.asarray(parent(x)), rtol=1e-6, atol=0)


@pytest.mark.parametrize("head", ["relu", "linear"])
def test_exact_on_squeezenet_v1_1_at_64px(head):
  spec = V1_1.replace(classifier_activation=head)
  parent = random_parent(spec, seed=3)
  x = pixels(spec, seed=1, batch=2)
  masks = [edge_masks(spec)[0]] + sampled_masks(spec, parent, draws=1, seed=len(head))
  for survivors in masks:
    child, child_spec = surgery.build_child(parent, spec, survivors, softmax=False)
    assert_close(child(x), surgery.zero_removed(parent, spec, survivors)(x))
    assert child.count_params() == child_spec.params()
  child, _ = surgery.build_child(parent, spec, all_kept(spec), softmax=False)
  np.testing.assert_allclose(np.asarray(child(x)), np.asarray(parent(x)), rtol=1e-5, atol=1e-6)


def test_params_match_keras_and_what_was_removed():
  parent = random_parent(SMALL, seed=5)
  channels, classes = SMALL.input_shape[2], SMALL.num_classes
  assert parent.count_params() == params_by_hand(channels, classes, *widths(SMALL, all_kept(SMALL)))
  for survivors in edge_masks(SMALL) + sampled_masks(SMALL, parent, draws=3, seed=1):
    child, child_spec = surgery.build_child(parent, SMALL, survivors, offspring_init="scratch")
    removed = (params_by_hand(channels, classes, *widths(SMALL, all_kept(SMALL))) -
               params_by_hand(channels, classes, *widths(SMALL, survivors)))
    assert child.count_params() == child_spec.params() == parent.count_params() - removed


def test_softmax_parent_and_either_child_head():
  parent = random_parent(SMALL, seed=6, softmax=True)
  survivors = sampled_masks(SMALL, parent, draws=1, seed=2)[0]
  reference = surgery.zero_removed(parent, SMALL, survivors)
  x = pixels(SMALL, seed=2)
  probabilities, _ = surgery.build_child(parent, SMALL, survivors, softmax=True)
  logits, _ = surgery.build_child(parent, SMALL, survivors, softmax=False)
  assert_close(probabilities(x), reference(x))
  np.testing.assert_allclose(np.asarray(keras.ops.softmax(logits(x))), np.asarray(reference(x)),
                             rtol=1e-5, atol=1e-7)


def test_scratch_children_are_fresh_and_seeded():
  parent = random_parent(SMALL, seed=7)
  survivors = sampled_masks(SMALL, parent, draws=1, seed=3)[0]
  inherited, _ = surgery.build_child(parent, SMALL, survivors, offspring_init="inherit")
  fresh_a, spec_a = surgery.build_child(parent, SMALL, survivors, offspring_init="scratch",
                                        seed=9)
  fresh_b, _ = surgery.build_child(parent, SMALL, survivors, offspring_init="scratch", seed=9)
  expected = models.build_model(spec_a, seed=9)
  for a, b, c, d in zip(fresh_a.get_weights(), fresh_b.get_weights(), expected.get_weights(),
                        inherited.get_weights()):
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)
    assert a.shape == d.shape
  assert not all(np.array_equal(a, d) for a, d in
                 zip(fresh_a.get_weights(), inherited.get_weights()))


def test_layer_strengths_are_kernel_l1_norms():
  parent = random_parent(SMALL, seed=8)
  strengths = surgery.layer_strengths(parent, SMALL)
  assert list(strengths) == [name for name, _ in SMALL.prunable_layers()]
  kernel = parent.get_layer("fire3_expand3x3").get_weights()[0]
  np.testing.assert_allclose(strengths["fire3_expand3x3"], np.abs(kernel).sum(axis=(0, 1, 2)),
                             rtol=1e-6)


def test_batch_norm_strengths_are_folded_kernel_l1_norms():
  parent = random_parent(SMALL_BN, seed=8)
  strengths = surgery.layer_strengths(parent, SMALL_BN)
  kernel = parent.get_layer("fire3_expand3x3").get_weights()[0]
  gamma, _, _, variance = parent.get_layer("fire3_expand3x3_bn").get_weights()
  expected = np.abs(gamma) / np.sqrt(variance + models.BN_EPSILON) * np.abs(kernel).sum(
      axis=(0, 1, 2))
  np.testing.assert_allclose(strengths["fire3_expand3x3"], expected, rtol=1e-5)


def test_recalibration_sets_moving_statistics_to_the_data():
  spec = SMALL_BN.replace(dropout_rate=0.0)
  model = random_parent(spec, seed=12)
  images = pixels(spec, seed=5, batch=16)
  used = batch_norm.recalibrate(model, [images[:8], (images[8:], None)], max_batches=8)
  assert used == 2
  probe = keras.Model(model.input, model.get_layer("conv1").output)
  # conv1's batch-norm input is the raw conv1 output; its moving mean is the
  # average of the two batch means.
  outputs = np.asarray(probe(images))
  expected = 0.5 * (outputs[:8].mean(axis=(0, 1, 2)) + outputs[8:].mean(axis=(0, 1, 2)))
  moving_mean = model.get_layer("conv1_bn").moving_mean.numpy()
  np.testing.assert_allclose(moving_mean, expected, rtol=1e-4, atol=1e-4)
  assert model.get_layer("conv1_bn").momentum == models.BN_MOMENTUM


def test_surgery_refuses_mismatched_inputs():
  parent = random_parent(SMALL, seed=9)
  with pytest.raises(ValueError, match=r"--offspring_init must be one of .*got 'clone'"):
    surgery.build_child(parent, SMALL, all_kept(SMALL), offspring_init="clone")
  wider = SMALL.replace(conv1_filters=9)
  with pytest.raises(ValueError, match=r"layer 'conv1' of model .* the model and spec disagree"):
    surgery.layer_strengths(parent, wider)
  with pytest.raises(ValueError, match=r"has no layer 'conv1'"):
    surgery.layer_strengths(keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]), SMALL)
