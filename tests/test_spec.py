"""NetSpec: exact sizes, JSON round-trip, validation. No TensorFlow needed."""

import json

import pytest

from squish_tf.net import spec as spec_lib


def test_spec_module_does_not_import_tensorflow():
  # Importing tensorflow elsewhere in the session is fine; spec.py itself must not.
  import ast
  import inspect
  tree = ast.parse(inspect.getsource(spec_lib))
  imported = {alias.name.split(".")[0] for node in ast.walk(tree)
              if isinstance(node, (ast.Import, ast.ImportFrom))
              for alias in (node.names if isinstance(node, ast.Import) else [ast.alias(node.module or "")])}
  assert not imported & {"tensorflow", "keras", "tf_keras"}


def test_squeezenet_v1_1_published_sizes():
  assert spec_lib.squeezenet_v1_1(1000).params() == 1_235_496
  assert spec_lib.squeezenet_v1_1(10).params() == 727_626
  assert spec_lib.squeezenet_v1_1(1000).macs() == 349_151_936


def test_squeezenet_v1_1_feature_map_sizes_at_224():
  shapes = {layer.name: layer for layer in spec_lib.squeezenet_v1_1().layer_shapes()}
  assert shapes["conv1"].out_height == 111
  assert shapes["fire2_squeeze1x1"].out_height == 55
  assert shapes["fire4_squeeze1x1"].out_height == 27
  assert shapes["fire6_squeeze1x1"].out_height == 13
  assert shapes["conv10"].out_height == 13


def test_size_mb_is_float32_bytes():
  spec = spec_lib.squeezenet_v1_1(1000)
  assert spec.size_mb() == pytest.approx(4.941984)


def test_base_documents_its_modifications_as_fields():
  base = spec_lib.squishednet_base(10, (64, 64, 3))
  assert base.num_classes == 10
  assert base.batch_norm and not spec_lib.squeezenet_v1_1(10).batch_norm
  # Same deployed layers as v1.1-10: batch norm folds into the convolutions.
  assert base.params() == 727_626
  assert base.keras_params() == 727_626 + 3 * base.num_filters()
  assert base.classifier_activation == "linear"
  assert base.kernel_initializer == "he_uniform"
  assert base.classifier_initializer == "normal_0.01"
  published = spec_lib.squishednet_base(10, classifier_activation="relu",
                                        kernel_initializer="glorot_uniform",
                                        classifier_initializer="glorot_uniform",
                                        batch_norm=False)
  assert published.architecture_key() == spec_lib.squeezenet_v1_1(10).architecture_key()


@pytest.mark.parametrize("spec", [
    spec_lib.squeezenet_v1_1(1000),
    spec_lib.squishednet_base(10, (64, 64, 3)),
    spec_lib.NetSpec(input_shape=(40, 48, 1), num_classes=3, conv1_filters=5,
                     fires=(spec_lib.FireSpec(2, 3, 4), spec_lib.FireSpec(5, 1, 1)),
                     pool_after=(1, 2), dropout_rate=0.0),
])
def test_json_round_trip_is_identity(spec):
  text = spec.to_json()
  assert spec_lib.NetSpec.from_json(text) == spec
  assert json.loads(text)["family"] == "squeezenet"


def test_numpy_integers_are_accepted_and_normalised():
  np = pytest.importorskip("numpy")
  fire = spec_lib.FireSpec(np.int64(3), np.int32(4), np.int64(5))
  assert type(fire.squeeze) is int
  spec = spec_lib.squishednet_base(10, (64, 64, 3)).replace(conv1_filters=np.int64(7))
  assert spec_lib.NetSpec.from_json(spec.to_json()) == spec


def test_min_input_size_is_the_boundary():
  spec = spec_lib.squishednet_base(10, (64, 64, 3))
  minimum = spec.min_input_size()
  assert minimum == 31
  spec.replace(input_shape=(minimum, minimum, 3))  # builds
  with pytest.raises(ValueError, match=r"input_shape .*minimum input 31x31"):
    spec.replace(input_shape=(minimum - 1, minimum, 3))


@pytest.mark.parametrize("changes, message", [
    ({"num_classes": 1}, r"num_classes must be >= 2.*got 1"),
    ({"conv1_filters": 0}, r"conv1_filters must be a positive integer, got 0"),
    ({"fires": (spec_lib.FireSpec(16, 0, 64),)}, r"fire2\.expand1x1 must be a positive integer, got 0"),
    ({"fires": ()}, r"fires must list at least one"),
    ({"pool_after": (1, 12)}, r"pool_after entries .* got 12"),
    ({"dropout_rate": 1.0}, r"dropout_rate must be in \[0, 1\), got 1.0"),
    ({"classifier_activation": "tanh"}, r"classifier_activation must be one of .* got 'tanh'"),
    ({"kernel_initializer": "zeros"}, r"kernel_initializer must be one of .* got 'zeros'"),
    ({"input_shape": (64, 64)}, r"input_shape must be \(height, width, channels\)"),
])
def test_invalid_specs_name_field_and_value(changes, message):
  with pytest.raises(ValueError, match=message):
    spec_lib.squishednet_base(10, (64, 64, 3)).replace(**changes)


def test_from_dict_refuses_other_families_and_unknown_fields():
  data = spec_lib.squishednet_base(10).to_dict()
  with pytest.raises(ValueError, match="Not a SqueezeNet-family spec"):
    spec_lib.NetSpec.from_dict({**data, "family": "mobilenet"})
  with pytest.raises(ValueError, match=r"Unknown NetSpec fields \['depth'\]"):
    spec_lib.NetSpec.from_dict({**data, "depth": 3})
  with pytest.raises(ValueError, match="not valid JSON"):
    spec_lib.NetSpec.from_json("{nope")


def test_prunable_layers_and_filters():
  spec = spec_lib.squeezenet_v1_1(10)
  names = [name for name, _ in spec.prunable_layers()]
  assert names[:4] == ["conv1", "fire2_squeeze1x1", "fire2_expand1x1", "fire2_expand3x3"]
  assert len(names) == 1 + 3 * 8
  assert "conv10" not in names
  assert spec.num_filters() == 64 + sum(f.squeeze + f.expand1x1 + f.expand3x3 for f in spec.fires)


def test_width_for_params_lands_near_target():
  base = spec_lib.squishednet_base(10, (64, 64, 3))
  scaled = spec_lib.width_for_params(base, 200_000)
  assert abs(scaled.params() - 200_000) / 200_000 < 0.03
  assert scaled.num_classes == 10
  with pytest.raises(ValueError, match="multiplier must be > 0"):
    spec_lib.scale_width(base, 0)


def test_round_channels_rounds_up_exactly():
  round_channels = spec_lib.round_channels
  # Integers (survivor counts, a spec's channels): exact, and they stay ints.
  assert [round_channels(c, 8) for c in (0, 1, 7, 8, 9, 16, 17, 33)] == [0, 8, 8, 8, 16, 16, 24, 40]
  assert [round_channels(c, 3) for c in (1, 3, 4, 6, 7)] == [3, 3, 6, 6, 9]
  assert all(type(round_channels(c, 8)) is int for c in (1, 8, 33))
  assert [round_channels(c, 1) for c in (0, 1, 7, 33)] == [0, 1, 7, 33]
  assert type(round_channels(7, 1)) is int
  # Floats (interpolated or expected widths): floats, float noise above a multiple forgiven.
  assert [round_channels(c, 8) for c in (0.5, 8.0, 8.5, 33.0, 16.0000000001, 16.00001)] == [
      8.0, 8.0, 16.0, 40.0, 16.0, 24.0]
  assert all(type(round_channels(c, 8)) is float for c in (0.5, 8.0, 33.0))
  assert round_channels(5.5, 1) == 5.5 and round_channels(33.0, 1) == 33.0
  np = pytest.importorskip("numpy")
  counts = round_channels(np.array([[1, 8, 9], [16, 17, 0]], dtype=np.int64), 8)
  assert counts.dtype == np.int64 and counts.tolist() == [[8, 8, 16], [16, 24, 0]]
  assert round_channels(np.int64(9), 4) == 12 and isinstance(round_channels(np.int64(9), 4),
                                                             np.integer)


def test_spec_json_without_batch_norm_field_reads_as_batch_norm_free():
  data = spec_lib.squishednet_base(10, (64, 64, 3)).to_dict()
  data.pop("batch_norm")
  old = spec_lib.NetSpec.from_dict(data)
  assert not old.batch_norm
  assert spec_lib.NetSpec.from_json(spec_lib.squishednet_base(10).to_json()).batch_norm
  with pytest.raises(ValueError, match="batch_norm must be true or false"):
    spec_lib.squishednet_base(10).replace(batch_norm="yes")


def test_json_files_hold_null_for_nan_and_infinity(tmp_path):
  import json as json_lib  # pylint: disable=g-import-not-at-top

  from squish_tf import files as files_lib  # pylint: disable=g-import-not-at-top
  path = str(tmp_path / "m.json")
  files_lib.write_json(path, {"loss": float("nan"), "speeds": [1.5, float("inf")], "n": 3})

  def refuse(constant):
    raise ValueError(constant)

  assert json_lib.loads(open(path).read(), parse_constant=refuse) == {
      "loss": None, "speeds": [1.5, None], "n": 3}
