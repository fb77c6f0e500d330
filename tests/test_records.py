"""The typed records: what a run writes reads back into them and out again unchanged."""

import json
import os
import subprocess
import sys

import pytest

from squish_tf import files as files_lib
from squish_tf import records

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
# Runs of the code at dfc010b (before the records), their files as that code wrote them: the
# demo (run_dfc010b: results.json, lineage.json, the SquishedNet's export.json) and a tiny run
# with every input of its results.json (run_dfc010b_tiny, below).
RUNS = ("run_dfc010b", "run_dfc010b_tiny")
TINY = os.path.join(FIXTURES, "run_dfc010b_tiny")
TINY_RUN_DIR = "/tmp/i29rec_oldrun"  # where it ran: the absolute paths its files hold


def _file_text(data):
  """What files.write_json writes for `data`."""
  return json.dumps(files_lib.finite_or_none(files_lib.json_round_trip(data)), indent=2,
                    sort_keys=True, allow_nan=False) + "\n"


def _fixtures(name):
  """The fixture files called `name` (a run's results.json, lineage.json, export.json)."""
  return [os.path.join(FIXTURES, run, name) for run in RUNS
          if os.path.isfile(os.path.join(FIXTURES, run, name))]


def _read(path):
  with open(path, encoding="utf-8") as handle:
    return handle.read()


# -- a run written before the records reads back byte for byte --------------------------


def _manifests():
  return _fixtures("export.json") + _fixtures(os.path.join("export", "export.json"))


def test_every_file_has_a_fixture():
  assert _fixtures("results.json") and _fixtures("lineage.json") and _manifests()


@pytest.mark.parametrize("path", _fixtures("results.json"))
def test_results_json_of_the_old_code_round_trips(path):
  text = _read(path)
  results = records.Results.from_json(json.loads(text))
  assert isinstance(results.models["squishednet"], records.ModelResult)
  assert results.models["squishednet"].name == "squishednet"
  assert all(isinstance(c, records.CandidateResult) for c in results.candidates)
  assert results.candidates and results.dataset.image_size > 0
  assert not results.extra and all(not m.extra for m in results.models.values())
  assert all(not c.extra for c in results.candidates)
  # The one change: the format version, added as "version".
  assert _file_text(results.to_json()) == _file_text(dict(json.loads(text), version=1))
  without_version = {k: v for k, v in results.to_json().items() if k != "version"}
  assert _file_text(without_version) == text


@pytest.mark.parametrize("path", _fixtures("results.json"))
def test_results_fields_read_as_attributes(path):
  raw = json.loads(_read(path))
  results = records.Results.from_json(raw)
  squished = results.models["squishednet"]
  assert squished.top1 == raw["models"]["squishednet"]["top1"]
  assert squished.speedup_vs_ancestor == {
      int(k): v for k, v in raw["models"]["squishednet"]["speedup_vs_ancestor"].items()}
  assert results.models["ancestor"].speedup_vs_ancestor[1] == 1.0
  assert (results.winner, results.stop_reason, results.polished) == (
      raw["winner"], raw["stop_reason"], raw["polished"])
  assert [c.id for c in results.candidates] == [c["id"] for c in raw["candidates"]]
  assert [g.chosen for g in results.generations] == [g["chosen"] for g in raw["generations"]]


@pytest.mark.parametrize("path", _fixtures("lineage.json"))
def test_lineage_json_of_the_old_code_round_trips(path):
  text = _read(path)
  lineage = records.Lineage.from_json(json.loads(text))
  assert lineage.candidates and all(isinstance(c, records.Candidate) for c in lineage.candidates)
  assert not lineage.extra and all(not c.extra for c in lineage.candidates)
  assert lineage.candidates[0].seed == json.loads(text)["candidates"][0]["seed"]
  assert _file_text(lineage.to_json()) == text


@pytest.mark.parametrize("path", _manifests())
def test_export_manifest_of_the_old_code_round_trips(path):
  text = _read(path)
  manifest = records.ExportManifest.from_json(json.loads(text))
  assert manifest.formats and all(isinstance(entry, records.FormatEntry)
                                  for entry in manifest.formats.values())
  assert all(entry.bytes > 0 for entry in manifest.formats.values())
  assert not manifest.extra and all(not entry.extra for entry in manifest.formats.values())
  assert _file_text(manifest.to_json()) == text


# -- presence, nulls and keys -----------------------------------------------------------


def test_an_optional_key_is_written_only_when_present():
  absent = records.ModelResult.from_json({"params": 10}, name="a")
  assert "gzip_bytes" not in absent.to_json() and "netscore" not in absent.to_json()
  assert absent.to_json()["top1"] is None  # always written
  null = records.ModelResult.from_json({"params": 10, "netscore": None}, name="a")
  assert null.to_json()["netscore"] is None and "netscore" in null.to_json()
  made = records.ModelResult.make(name="a", tflite_int8_bytes=None)
  assert "tflite_int8_bytes" in made.to_json() and "tflite_fp32_bytes" not in made.to_json()
  assert "gzip_bytes" in records.ModelResult(gzip_bytes=12).to_json()


def test_batch_and_image_sizes_are_ints_in_the_record_and_strings_in_the_file():
  entry = {"speedup_vs_ancestor": {"1": 1.5, "16": 2.0},
           "speedup_at_resolution": {"224": {"1": 3.0}}}
  model = records.ModelResult.from_json(entry, name="m")
  assert model.speedup_vs_ancestor == {1: 1.5, 16: 2.0}
  assert model.speedup_at_resolution == {224: {1: 3.0}}
  out = model.to_json()
  assert out["speedup_vs_ancestor"] == {"1": 1.5, "16": 2.0}
  assert out["speedup_at_resolution"] == {"224": {"1": 3.0}}


def test_unknown_keys_are_kept_and_written_back():
  data = {"winner": "gen_001/cand_00", "from_the_future": [1, 2],
          "models": {"ancestor": {"label": "A", "new_figure": 3}}}
  results = records.Results.from_json(data)
  assert results.extra == {"from_the_future": [1, 2]}
  assert results.models["ancestor"].extra == {"new_figure": 3}
  out = results.to_json()
  assert out["from_the_future"] == [1, 2] and out["models"]["ancestor"]["new_figure"] == 3
  assert out["version"] == records.RESULTS_VERSION


def test_malformed_entries_read_as_empty():
  results = records.Results.from_json({"models": {"ancestor": None}, "candidates": [None, 3,
                                                                                   {"id": "x"}],
                                       "dataset": "nonsense"})
  assert results.models["ancestor"].top1 is None and results.models["ancestor"].name == "ancestor"
  assert [c.id for c in results.candidates] == ["x"]
  assert records.Results.from_json(None).models == {}
  assert records.Results.coerce(results) is results


def test_an_older_results_json_without_fields_still_loads():
  older = {"models": {"ancestor": {"top1": 0.9, "litert_images_per_sec": {"1": 100.0}}},
           "winner": "gen_001/cand_00"}
  results = records.Results.from_json(older)
  assert results.accuracy_split is None and results.candidates == []
  assert results.models["ancestor"].speedup_vs_ancestor is None
  assert results.models["ancestor"].litert_images_per_sec == {1: 100.0}


def test_records_import_no_tensorflow_and_no_numpy():
  code = ("import sys, squish_tf.records; "
          "print(sorted({m.split('.')[0] for m in sys.modules} & "
          "{'tensorflow', 'keras', 'tf_keras', 'numpy'}))")
  env = dict(os.environ, PYTHONPATH=ROOT)
  out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True,
                       capture_output=True, text=True).stdout
  assert out.strip() == "[]"


@pytest.mark.parametrize("record", [records.Results, records.ModelResult,
                                    records.CandidateResult, records.Candidate, records.Lineage,
                                    records.ExportManifest, records.FormatEntry])
def test_a_made_record_round_trips(record):
  made = record.from_json({})
  again = record.from_json(made.to_json())
  assert again.to_json() == made.to_json()


# -- the writer writes what the code before the records wrote --------------------------

# The tiny run keeps every input of its results.json: its model dirs' metrics.json and
# spec.json, lineage.json, benchmark.json, evaluation.json and the int8 exports' manifests.


def _copy_tiny_run(target):
  """The tiny run's files under `target`, their absolute paths moved there too."""
  for directory, _, names in os.walk(TINY):
    for name in names:
      source = os.path.join(directory, name)
      destination = os.path.join(target, os.path.relpath(source, TINY))
      os.makedirs(os.path.dirname(destination), exist_ok=True)
      with open(source, encoding="utf-8") as handle:
        text = handle.read()
      if name in ("lineage.json", "benchmark.json"):
        text = text.replace(TINY_RUN_DIR, str(target))
      with open(destination, "w", encoding="utf-8") as handle:
        handle.write(text)


def test_results_json_is_written_as_the_code_before_the_records_wrote_it(tmp_path):
  from squish_tf.data import config as data_config_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.evolve import config as evolve_config_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.job import config as job_config_lib  # pylint: disable=g-import-not-at-top
  from squish_tf.job import results as job_results_lib  # pylint: disable=g-import-not-at-top

  _copy_tiny_run(tmp_path)
  old_text = open(os.path.join(TINY, "results.json"), encoding="utf-8").read()
  old = json.loads(old_text)
  dataset = old["dataset"]
  info = data_config_lib.DatasetInfo(dataset["name"], tuple(dataset["class_names"]),
                                     dataset["train_count"], dataset["validation_count"],
                                     dataset["image_size"], test_count=dataset["test_count"])
  baselines = {name: str(tmp_path / "baselines" / name) for name, entry in old["models"].items()
               if entry["kind"] == "baseline"}
  times = {stage: seconds for stage, seconds in old["wall_seconds"].items() if stage != "total"}
  read = lambda name: files_lib.read_json(str(tmp_path / name))  # noqa: E731
  # Of the configs, results.json reads the run's name and image size (the evolution config
  # only as the offspring epochs of candidates that do not record theirs).
  written = job_results_lib.build_results(
      job_config_lib.JobConfig(run_dir=str(tmp_path), run_name=old["run_name"]), info,
      data_config_lib.DataConfig(image_size=dataset["image_size"]), read("lineage.json"),
      str(tmp_path / "squishednet"), baselines, read("benchmark.json"),
      read("evaluation.json"), times, old["command"], evolve_config_lib.EvolutionConfig())
  assert written.pop("version") == records.RESULTS_VERSION
  assert _file_text(written) == old_text
