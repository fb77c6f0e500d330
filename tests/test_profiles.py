"""Device profiles: measured without TensorFlow, read back as the table measured in-process."""

import ast
import importlib.util
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import toy

from squish_tf import files as files_lib
from squish_tf.bench import device_measure
from squish_tf.bench import devices as devices_lib
from squish_tf.bench import latency
from squish_tf.bench import latency_table as latency_table_lib
from squish_tf.bench import profile as profile_lib
from squish_tf.evolve import config as evolve_config_lib

# One fire: few probes. The calibration networks are still the seven widths.
SMALL = toy.TINY.replace(fires=toy.TINY.fires[:1], pool_after=(1,))


def fake_ms(name):
  """A deterministic ms per model name (what a clock would have said)."""
  return 0.001 * (1 + sum(ord(c) * (i + 1) for i, c in enumerate(name)) % 97)


def fake_pack(tmp_path, monkeypatch, content=b"not a model"):
  """`devices.pack` of SMALL with every conversion replaced by `content`."""
  monkeypatch.setattr(latency, "conv_tflite", lambda signature, fmt, seed=0: content)
  monkeypatch.setattr(latency, "move_tflite", lambda signature, fmt, seed=0: content)
  monkeypatch.setattr(latency, "spec_tflite", lambda spec, fmt, seed=0: content)
  pack_dir = str(tmp_path / "pack")
  return pack_dir, devices_lib.pack(SMALL, "fp32", pack_dir, progress=None)


def profile_json(manifest, ms_of=fake_ms):
  """The profile measure.py writes for `manifest` with `ms_of(name)` per model."""
  ms = {model["name"]: ms_of(model["name"]) for model in manifest["models"]}
  return device_measure.profile_of(manifest, ms, "phone", "ai-edge-litert", "2.3.0", 4, "timed",
                                   1.0)


def test_a_profile_round_trips_through_json(tmp_path, monkeypatch):
  _, manifest = fake_pack(tmp_path, monkeypatch)
  profile = profile_lib.DeviceProfile.from_json(profile_json(manifest))
  path = str(tmp_path / "profile.json")
  files_lib.write_json(path, profile.to_json())
  again = profile_lib.load_profile(path)
  assert again == profile
  assert again.table(SMALL).to_json() == profile.table(SMALL).to_json()
  assert again.describe() == "phone (ai-edge-litert 2.3.0, fp32, 4 threads)"
  assert latency_table_lib.clock_name(again.table(SMALL)) == "device " + again.describe()


def test_a_table_from_a_profile_equals_the_one_built_in_process(tmp_path, monkeypatch):
  """The same milliseconds per model, once through the in-process clock and once through a
  pack's manifest and a profile's JSON, give the same table."""
  _, manifest = fake_pack(tmp_path, monkeypatch)
  monkeypatch.setattr(latency, "_runner_call", lambda model, threads: lambda: None)
  monkeypatch.setattr(latency, "_median_ms",
                      lambda calls, rounds, seconds: {name: fake_ms(name) for name in calls})
  in_process = latency.measure_table(SMALL, "fp32", 4, progress=None).to_json()
  data = json.loads(json.dumps(profile_json(manifest)))
  from_profile = profile_lib.DeviceProfile.from_json(data).table(SMALL).to_json()
  assert in_process.pop("key") != from_profile.pop("key")  # the clock's name differs, only it
  assert from_profile == in_process
  assert from_profile["calibration"][0]["measured_ms"] == fake_ms("net1")


def test_a_profile_of_another_size_or_network_is_refused_with_the_pack_line(tmp_path,
                                                                            monkeypatch):
  _, manifest = fake_pack(tmp_path, monkeypatch)
  profile = profile_lib.DeviceProfile.from_json(profile_json(manifest))
  with pytest.raises(ValueError, match="--image_size=64"):
    profile.table(SMALL.replace(input_shape=(64, 64, 3)))
  with pytest.raises(ValueError, match="another architecture.*--num_classes=3"):
    profile.table(toy.TINY)
  with pytest.raises(ValueError, match="version"):
    profile_lib.DeviceProfile.from_json(dict(profile.to_json(), version=99))


def test_measure_py_runs_where_tensorflow_cannot_be_imported(tmp_path, monkeypatch):
  """The pack's measure.py, copied out, in a Python whose `import tensorflow` raises."""
  probe = latency.conv_tflite((1, 1, "valid", 4, 4, 2, 2, "relu"), "fp32")
  pack_dir, manifest = fake_pack(tmp_path, monkeypatch, content=probe)
  blocked = tmp_path / "blocked"
  (blocked / "tensorflow").mkdir(parents=True)
  (blocked / "tensorflow" / "__init__.py").write_text(
      "raise ImportError('TensorFlow is not on this device')\n")
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  env["PYTHONPATH"] = str(blocked)
  check = subprocess.run([sys.executable, "-c", "import tensorflow"], env=env, cwd=pack_dir,
                         capture_output=True, text=True, check=False)
  assert "not on this device" in check.stderr
  done = subprocess.run([sys.executable, devices_lib.MEASURE_SCRIPT, "--device_name=nano",
                         "--threads=1", "--quick", "--out=profile.json"], env=env, cwd=pack_dir,
                        capture_output=True, text=True, check=False)
  assert done.returncode == 0, done.stderr
  profile = profile_lib.load_profile(os.path.join(pack_dir, "profile.json"))
  assert (profile.device, profile.runtime, profile.format) == ("nano", "ai-edge-litert", "fp32")
  assert len(profile.measurements.op_ms) == len(latency_table_lib.probe_signatures(SMALL))
  assert all(ms > 0 for ms in profile.measurements.network_ms.values())
  assert profile.table(SMALL).predict(SMALL) > 0
  with open(os.path.join(pack_dir, devices_lib.MODELS_LIST)) as handle:
    assert len(handle.read().split()) == len(manifest["models"])


def test_measure_py_reads_benchmark_model_op_profiling_csvs(tmp_path, monkeypatch):
  pack_dir, manifest = fake_pack(tmp_path, monkeypatch)
  csv_dir = tmp_path / "csv"
  csv_dir.mkdir()
  header = "node type, start, first, avg_ms, %, cdf%, mem KB, times called, name"
  for model in manifest["models"]:
    ms = fake_ms(model["name"])
    (csv_dir / f"{model['name']}.csv").write_text(
        "Profiling Info for Benchmark Initialization:\n"
        f"============================== Run Order ==============================\n{header}\n"
        "AllocateTensors, 0, 5.0, 5.0, 100%, 100%, 0, 1, AllocateTensors/0\n\n"
        "Operator-wise Profiling Info for Regular Benchmark Runs:\n"
        f"============================== Run Order ==============================\n{header}\n"
        f"CONV_2D, 0, 1.0, {ms * 0.75:.6f}, 75%, 75%, 0, 1, [conv]:0\n"
        f"QUANTIZE, 0, 1.0, {ms * 0.25:.6f}, 25%, 100%, 0, 1, [q]:1\n\n"
        f"============================== Top by Computation Time ==========\n{header}\n"
        f"CONV_2D, 0, 1.0, {ms * 0.75:.6f}, 75%, 75%, 0, 1, [conv]:0\n")
  device_measure.main([f"--pack={pack_dir}", f"--op_profiles={csv_dir}", "--device_name=phone",
                       "--threads=4", f"--out={tmp_path / 'profile.json'}"])
  profile = profile_lib.load_profile(str(tmp_path / "profile.json"))
  assert profile.source == "op_profiling_csv" and profile.runtime == "benchmark_model"
  expected = profile_lib.DeviceProfile.from_json(profile_json(manifest)).measurements
  assert profile.measurements.network_ms == pytest.approx(expected.network_ms)
  assert profile.measurements.overhead_ms == pytest.approx(expected.overhead_ms)


def test_a_built_in_device_is_measured_once_then_read_from_its_cache(tmp_path, monkeypatch):
  _, manifest = fake_pack(tmp_path, monkeypatch)
  runs = []

  def measure(pack_dir, name, out, runtime, threads):
    runs.append((name, runtime, threads))
    device = profile_lib.BUILT_IN[name]
    data = dict(profile_json(manifest), device=name, runtime=runtime, threads=threads,
                format=device.format, host=device_measure.host_info(),
                runtime_version=device_measure.runtime_version(runtime))
    return profile_lib.DeviceProfile.from_json(files_lib.json_round_trip(data))

  monkeypatch.setattr(devices_lib, "run_measure", measure)
  cache = str(tmp_path / "cache")
  first = devices_lib.clock_table(str(tmp_path), SMALL, "fp32", 2, device="tflm",
                                  cache_dir=cache, progress=None)
  again = devices_lib.clock_table(str(tmp_path), SMALL, "fp32", 2, device="tflm",
                                  cache_dir=cache, progress=None)
  assert runs == [("tflm", "tflite-micro", 1)]
  assert again.to_json() == first.to_json() and first.format == "int8"
  assert os.listdir(cache) == [devices_lib.cache_file("tflm", SMALL)]


def test_device_options_are_checked_when_the_config_is_built(tmp_path):
  config = evolve_config_lib.EvolutionConfig(device="cpu_int8")
  assert config.device_set and config.needs_latency(evolve_config_lib.synthesis.SynthesisConfig())
  with pytest.raises(ValueError, match="--device must be one of .*'tflm'.*got 'gpu'"):
    evolve_config_lib.EvolutionConfig(device="gpu")
  with pytest.raises(ValueError, match="both name the clock.*pass one of them"):
    evolve_config_lib.EvolutionConfig(device="tflm", device_profile="profile.json")
  with pytest.raises(ValueError, match="no such file.*squish-profile pack"):
    evolve_config_lib.EvolutionConfig(device_profile=str(tmp_path / "missing.json"))
  (tmp_path / "bad.json").write_text(json.dumps({"version": 1, "device": "x"}))
  with pytest.raises(ValueError, match="bad.json: device profile without"):
    evolve_config_lib.EvolutionConfig(device_profile=str(tmp_path / "bad.json"))
  with pytest.raises(ValueError, match="--latency_format=int8.*times fp32"):
    evolve_config_lib.EvolutionConfig(device="cpu_fp32", latency_format="int8")


def test_measure_py_is_standalone_and_keeps_the_in_process_rounds():
  with open(device_measure.__file__, encoding="utf-8") as handle:
    tree = ast.parse(handle.read())
  imported = {alias.name.split(".")[0] for node in ast.walk(tree)
              if isinstance(node, ast.Import) for alias in node.names}
  imported |= {node.module.split(".")[0] for node in ast.walk(tree)
               if isinstance(node, ast.ImportFrom)}
  assert imported <= {"argparse", "json", "os", "platform", "sys", "time", "numpy", "importlib",
                      "ai_edge_litert", "tflite_runtime", "tflite_micro"}, imported
  assert (device_measure.PROBE_ROUNDS, device_measure.PROBE_ROUND_SECONDS) == (
      latency.TABLE_ROUNDS, latency.TABLE_ROUND_SECONDS)
  assert (device_measure.NETWORK_ROUNDS, device_measure.NETWORK_ROUND_SECONDS) == (
      latency.NETWORK_ROUNDS, latency.NETWORK_ROUND_SECONDS)


def test_a_run_reads_its_table_from_the_profile_and_names_the_device(tmp_path, monkeypatch):
  from squish_tf.evolve import evolution  # pylint: disable=g-import-not-at-top
  from squish_tf.report import sections  # pylint: disable=g-import-not-at-top

  _, manifest = fake_pack(tmp_path, monkeypatch)
  path = str(tmp_path / "profile.json")
  files_lib.write_json(path, profile_json(manifest))
  monkeypatch.setattr(latency, "load_or_measure", lambda *args, **kwargs: pytest.fail("measured"))
  lines = []
  config = evolve_config_lib.EvolutionConfig(device_profile=path)
  table = evolution.clock_table(str(tmp_path), SMALL, config, progress=lines.append)
  assert table.to_json() == profile_lib.load_profile(path).table(SMALL).to_json()
  name = latency_table_lib.clock_name(table)
  assert name == "device phone (ai-edge-litert 2.3.0, fp32, 4 threads)"
  assert lines and name[len("device "):] in lines[0]
  text = sections.latency_section({"latency_model": {"table": name}, "candidates": []})
  assert f"(`{name}`)" in text


def test_each_clock_times_candidates_where_its_table_predicts(tmp_path):
  """A built-in device's candidates are timed on its own format, threads and runtime, and
  their error is against its table; a profile from another device gets no error."""
  from squish_tf.evolve import evolution  # pylint: disable=g-import-not-at-top

  clock = profile_lib.measuring_clock
  assert clock("tflm", None, "fp32", 2) == profile_lib.Clock("int8", 1, "tflite-micro", "tflm",
                                                             True)
  assert clock("cpu_int8", None, "fp32", 2) == profile_lib.Clock("int8", 1, "ai-edge-litert",
                                                                 "cpu_int8", True)
  assert clock(None, None, "int8", 2) == profile_lib.Clock("int8", 2, "ai-edge-litert", None,
                                                           True)
  assert clock(None, "p.json", "fp32", 2) == profile_lib.Clock("fp32", 2, "ai-edge-litert",
                                                               None, False)
  assert evolve_config_lib.EvolutionConfig(device="tflm").measure_clock == clock(
      "tflm", None, "fp32", 2)

  def run(measure_clock):
    sessions = []

    def measure(model_dirs, reference, fmt, threads, runtime):
      sessions.append((sorted(model_dirs), reference, fmt, threads, runtime))
      return {name: {"latency_ms": 4.0 if name == reference else 2.5, "speedup": 1.6,
                     "speedup_min": 1.5, "speedup_max": 1.7} for name in model_dirs}

    records = [{"id": "gen_001/cand_00", "status": "ok", "dir": "gen_001/cand_00",
                "predicted_latency_ms": 2.0},
               {"id": "gen_001/cand_01", "status": "diverged", "dir": None}]
    lineage = {"ancestor": {"predicted_latency_ms": 4.0}, "candidates": records}
    run_dir = tmp_path / str(measure_clock.device)
    run_dir.mkdir()
    evolution._measure_latency(str(run_dir), records, lineage, "ancestor_dir",  # pylint: disable=protected-access
                               measure_clock, 0, measure)
    return sessions, records[0], lineage

  sessions, record, lineage = run(clock("tflm", None, "fp32", 2))
  assert sessions == [(["ancestor", "gen_001/cand_00"], "ancestor", "int8", 1, "tflite-micro")]
  assert record["measured_device"] == "tflm" and record["measured_format"] == "int8"
  assert record["latency_error"] == pytest.approx(2.0 / 2.5 - 1)
  assert record["speedup_error"] == pytest.approx(2.0 / 1.6 - 1)
  assert lineage["ancestor"]["measured_latency_ms"] == 4.0
  _, record, _ = run(clock(None, "p.json", "fp32", 2))
  assert record["measured_latency_ms"] == 2.5 and "measured_device" not in record
  assert "latency_error" not in record and "speedup_error" not in record


def test_tflite_micro_times_models_interleaved_as_litert_does(monkeypatch):
  """`measure_against` on TFLite-Micro: every model is invoked through its reference kernels."""
  models = {name: latency.conv_tflite((1, 1, "valid", 4, 4, 2, channels, "relu"), "int8")
            for name, channels in (("small", 2), ("large", 16))}
  made = []
  real = device_measure.micro_call
  monkeypatch.setattr(device_measure, "micro_call",
                      lambda content: made.append(content) or real(content))
  measured = latency.measure_against(models, "large", rounds=3, round_seconds=0.005,
                                     runtime=device_measure.MICRO_RUNTIME)
  assert sorted(made) == sorted(models.values())
  assert measured["large"]["speedup"] == 1.0
  assert all(m["latency_ms"] > 0 and m["speedup_min"] <= m["speedup"] <= m["speedup_max"]
             for m in measured.values())
  with pytest.raises(ValueError, match="runtime must be 'ai-edge-litert' or 'tflite-micro'"):
    latency.measure_against(models, "large", runtime="tflite-runtime")


# -- the Jetson: a pack of frozen graphs, measured by the bundle's jetson_trt.py ----------------


def load_script():
  """The Jetson bundle's jetson_trt.py as a module (it imports nothing of squish_tf)."""
  from squish_tf.export import jetson  # pylint: disable=g-import-not-at-top

  loaded = importlib.util.spec_from_file_location("jetson_trt", jetson.script_path())
  script = importlib.util.module_from_spec(loaded)
  loaded.loader.exec_module(script)
  return script


@pytest.fixture(scope="module")
def jetson_pack_dir(tmp_path_factory):
  directory = str(tmp_path_factory.mktemp("jetson") / "pack")
  devices_lib.pack(SMALL, devices_lib.JETSON, directory, progress=None)
  return directory


def test_a_jetson_pack_holds_the_tables_models_as_portable_frozen_graphs(jetson_pack_dir):
  import tensorflow as tf  # pylint: disable=g-import-not-at-top

  from squish_tf.export import jetson  # pylint: disable=g-import-not-at-top

  manifest = files_lib.read_json(os.path.join(jetson_pack_dir, device_measure.MANIFEST))
  signatures = latency_table_lib.probe_signatures(SMALL)
  assert manifest["format"] == "jetson" and manifest["image_size"] == 32
  assert [m["kind"] for m in manifest["models"]].count("probe") == len(signatures)
  assert [m["width"] for m in manifest["models"] if m["kind"] == "network"] == list(
      latency_table_lib.CALIBRATION_WIDTHS)
  assert sorted(os.listdir(jetson_pack_dir)) == sorted(
      [jetson.SCRIPT_FILE, device_measure.MANIFEST, devices_lib.MODELS_LIST,
       devices_lib.MODELS_DIR])
  for model in manifest["models"]:
    graph_def = tf.compat.v1.GraphDef()
    with open(os.path.join(jetson_pack_dir, model["file"]), "rb") as handle:
      graph_def.ParseFromString(handle.read())
    jetson.check_portable(graph_def)
    image = np.random.default_rng(0).uniform(0, 255, [2] + model["input_shape"])
    output = jetson.run_graph_def(graph_def, image)
    if model["kind"] == "network":
      assert output.shape == (2, SMALL.num_classes)
      np.testing.assert_allclose(output.sum(axis=1), 1.0, rtol=1e-5)
    else:
      kernel, strides, padding, height, width, _, filters, activation = model["signature"]
      expected = tf.nn.conv2d(image.astype(np.float32), np.zeros(
          [kernel, kernel, model["input_shape"][2], filters], np.float32), strides,
          padding.upper())
      assert output.shape == tuple(expected.shape)
      ops = {node.op for node in graph_def.node}
      assert ops == {"Placeholder", "Const", "Conv2D", "BiasAdd", "Identity"} | (
          {"Relu"} if activation == "relu" else set())
      assert (output >= 0).all() or activation != "relu"
      assert model["input_shape"] == [height, width, model["signature"][5]]


class FakeClock:
  """A clock that moves only when a wrapped call runs: by that model's fake ms."""

  def __init__(self):
    self.seconds = 100.0

  def __call__(self):
    return self.seconds

  def wrap(self, name, call):
    def timed():
      call()  # the model really runs
      self.seconds += fake_ms(name) / 1e3
    return timed


def measure_with_script(script, monkeypatch, argv):
  """script.main(argv) with every model's time `fake_ms(name)`: its exit status."""
  clock = FakeClock()
  time_pack = script.time_pack

  def fake_time_pack(manifest, calls, quick=False):
    wrapped = {name: clock.wrap(name, call) for name, call in calls.items()}
    return time_pack(manifest, wrapped, quick, clock=clock)

  monkeypatch.setattr(script, "time_pack", fake_time_pack)
  # On the fake clock a call takes far less than a round, so each would run MAX_INVOKES times
  # a round: the fewest do, and the medians are the fake ms whatever the count.
  monkeypatch.setattr(script, "MAX_INVOKES", script.MIN_INVOKES)
  return script.main(argv)


def in_process_table(monkeypatch, profile):
  """`latency.measure_table` of SMALL in this process with the profile's ms per model (a
  Jetson pack's: without max pools and concatenations, so none measured here either)."""
  signatures = latency_table_lib.probe_signatures(SMALL)
  m = profile.measurements
  by_name = {f"op{i}": m.op_ms[s] for i, s in enumerate(signatures)}
  by_name["op_overhead"] = m.overhead_ms
  by_name.update({f"net{w:g}": ms for w, ms in m.network_ms.items()})
  monkeypatch.setattr(latency, "conv_tflite", lambda signature, fmt, seed=0: b"")
  monkeypatch.setattr(latency, "spec_tflite", lambda spec, fmt, seed=0: b"")
  monkeypatch.setattr(latency, "move_signatures", lambda spec: [])
  monkeypatch.setattr(latency, "_runner_call", lambda model, threads: lambda: None)
  monkeypatch.setattr(latency, "_median_ms",
                      lambda calls, rounds, seconds: {name: by_name[name] for name in calls})
  return latency.measure_table(SMALL, profile.format, profile.threads, progress=None).to_json()


def test_jetson_trt_writes_a_profile_whose_table_is_the_in_process_one(jetson_pack_dir, tmp_path,
                                                                       monkeypatch, capsys):
  """The script's measuring code (plain TensorFlow here: no TensorRT in this TensorFlow) times
  every model of the pack; its profile reads back as the table built in-process from the same
  milliseconds."""
  script = load_script()
  out = str(tmp_path / "profile.json")
  status = measure_with_script(script, monkeypatch, [
      "--pack_dir", jetson_pack_dir, "--profile_out", out, "--device_name", "tx1",
      "--precision", "none", "--work_dir", str(tmp_path / "work")])
  assert status == 0, capsys.readouterr().err
  profile = profile_lib.load_profile(out)
  assert (profile.device, profile.runtime, profile.format) == ("tx1", "tensorflow", "fp32")
  assert profile_lib.DeviceProfile.from_json(profile.to_json()) == profile
  signatures = latency_table_lib.probe_signatures(SMALL)
  assert [profile.measurements.op_ms[s] for s in signatures] == pytest.approx(
      [fake_ms(f"op{i}") for i in range(len(signatures))], rel=1e-6)
  assert profile.measurements.network_ms[0.5] == pytest.approx(fake_ms("net0.5"), rel=1e-6)
  from_profile = profile.table(SMALL).to_json()
  in_process = in_process_table(monkeypatch, profile)
  assert in_process.pop("key") != from_profile.pop("key")  # the clock's name differs, only it
  assert from_profile == in_process
  assert "tensorflow" in capsys.readouterr().out


def test_jetson_trt_converts_each_model_with_tftrt_fp16_where_it_can(jetson_pack_dir, tmp_path,
                                                                     monkeypatch):
  """TF-TRT stood in for (no TensorRT here): every model converted at FP16, batch 1, even a
  lone convolution; the profile says tf-trt, fp16 and the GPU."""
  script = load_script()
  converted = []

  def convert(tf, native, output, precision, batch_sizes, shape, calibration, workspace,
              minimum_segment_size=3):
    converted.append((precision, batch_sizes, minimum_segment_size))
    shutil.copytree(native, output)

  monkeypatch.setattr(script, "tensorrt_available", lambda tf: True)
  monkeypatch.setattr(script, "gpu_compute_capability", lambda tf: ("NVIDIA Tegra X1", (5, 3)))
  monkeypatch.setattr(script, "convert_with_tftrt", convert)
  monkeypatch.setattr(script, "tensorrt_version", lambda: "8.2.1")
  out = str(tmp_path / "profile.json")
  assert measure_with_script(script, monkeypatch, [
      "--pack_dir", jetson_pack_dir, "--profile_out", out, "--device_name", "tx1",
      "--work_dir", str(tmp_path / "work")]) == 0
  profile = profile_lib.load_profile(out)
  assert (profile.runtime, profile.format) == ("tf-trt", "fp16")
  assert converted == [("FP16", [1], 1)] * (len(latency_table_lib.probe_signatures(SMALL)) + 8)
  assert (profile.host["gpu"], profile.host["compute_capability"], profile.host["tensorrt"]) == (
      "NVIDIA Tegra X1", [5, 3], "8.2.1")
  assert profile.describe().startswith("tx1 (tf-trt ") and ", fp16, " in profile.describe()
  assert profile.table(SMALL).format == "fp16"
  with pytest.raises(ValueError, match=r"--format=jetson`, then jetson_trt.py --profile_out"):
    profile.table(SMALL.replace(input_shape=(64, 64, 3)))


def test_jetson_trt_falls_back_to_plain_tensorflow_in_one_line(jetson_pack_dir, tmp_path):
  """Run as on a device, in a subprocess: TF-TRT FP16 asked for, none here."""
  from squish_tf.export import jetson  # pylint: disable=g-import-not-at-top

  out = str(tmp_path / "profile.json")
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", CUDA_VISIBLE_DEVICES="")
  done = subprocess.run([sys.executable, os.path.join(jetson_pack_dir, jetson.SCRIPT_FILE),
                         "--profile_out", out, "--device_name", "host", "--quick",
                         "--work_dir", str(tmp_path / "work")],
                        capture_output=True, text=True, env=env, timeout=600, check=False)
  assert done.returncode == 0, done.stderr[-2000:]
  warnings = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
  assert len(warnings) == 1 and "without TensorRT" in warnings[0]
  assert "runtime 'tensorflow', format fp32" in warnings[0]
  profile = profile_lib.load_profile(out)
  assert (profile.runtime, profile.format, profile.source) == ("tensorflow", "fp32", "timed")
  assert len(profile.measurements.op_ms) == len(latency_table_lib.probe_signatures(SMALL))
  assert all(ms > 0 for ms in profile.measurements.op_ms.values())
  assert all(ms > 0 for ms in profile.measurements.network_ms.values())
  assert profile.measurements.overhead_ms > 0 and profile.seconds > 0


def test_jetson_trt_refuses_what_a_profile_cannot_be(jetson_pack_dir, tmp_path, monkeypatch,
                                                     capsys):
  script = load_script()
  for argv, words in ((["--profile_out", "p.json"], "needs --device_name"),
                      (["--profile_out", "p.json", "--device_name", "x", "--precision", "INT8",
                        "--calibration_dir", "."], "FP16, FP32 or none")):
    with pytest.raises(SystemExit) as exit_info:
      script.parse_args(argv)
    assert exit_info.value.code == 2 and words in capsys.readouterr().err
  tflite_pack, _ = fake_pack(tmp_path, monkeypatch)
  assert script.main(["--pack_dir", tflite_pack, "--profile_out", "p.json",
                      "--device_name", "x"]) == 2
  assert "--format=jetson" in capsys.readouterr().err
  with pytest.raises(SystemExit, match="Jetson pack.*jetson_trt.py --profile_out"):
    device_measure.main([f"--pack={jetson_pack_dir}", "--device_name=x"])


def test_jetson_trt_keeps_the_profile_schema_and_the_tables_rounds():
  script = load_script()
  assert script.PROFILE_VERSION == profile_lib.PROFILE_VERSION
  assert script.PACK_FORMAT == devices_lib.JETSON and script.PACK_MANIFEST == device_measure.MANIFEST
  assert {script.RUNTIME_TFTRT, script.RUNTIME_TENSORFLOW} == set(profile_lib.JETSON_RUNTIMES)
  assert set(script.PROFILE_FORMATS.values()) <= set(profile_lib.PROFILE_FORMATS)
  assert (script.PROBE_ROUNDS, script.PROBE_ROUND_SECONDS, script.NETWORK_ROUNDS,
          script.NETWORK_ROUND_SECONDS) == (latency.TABLE_ROUNDS, latency.TABLE_ROUND_SECONDS,
                                            latency.NETWORK_ROUNDS, latency.NETWORK_ROUND_SECONDS)
  assert (script.MIN_INVOKES, script.MAX_INVOKES, script.CALIBRATION_INVOKES,
          script.WARMUP_INVOKES) == (device_measure.MIN_INVOKES, device_measure.MAX_INVOKES,
                                     device_measure.CALIBRATION_INVOKES,
                                     device_measure.WARMUP_INVOKES)
