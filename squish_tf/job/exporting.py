"""Stage 5, the export: the SquishedNet (and the family's other members) in every format asked
for, the ancestor and the baselines in the formats the report compares.

Everything is trained by now: the export's accuracy pass is the first to read the test split.
"""

import os
from typing import Any, Callable, Dict, Optional, Sequence, Tuple

from squish_tf import export as export_lib
from squish_tf import files as files_lib
from squish_tf import records
from squish_tf.data import config as data_config_lib
from squish_tf.evolve import micro_budget as micro_budget_lib
from squish_tf.export import jetson as jetson_lib
from squish_tf.job import family as family_lib
from squish_tf.job.config import COMPARISON_FORMATS, JobConfig
from squish_tf.job.context import Run, Stages
from squish_tf.layout import EXPORT_DIR
from squish_tf.runtime import workers as workers_lib

# {name: (model_dir, export_dir, formats)} of the models the job exports.
Exports = Dict[str, Tuple[str, str, Any]]


def ships_jetson(config: JobConfig) -> bool:
  """The SquishedNet's export includes a Jetson bundle (the ancestor's then ships beside it)."""
  return "jetson" in export_lib.parse_formats(config.export.formats, with_data=True)


def models_to_export(run: Run, squishednet_dir: str,
                     family: Sequence[family_lib.Member] = ()) -> Exports:
  """The SquishedNet in full, the family's other members in full but the Jetson bundle, the
  ancestor and the baselines for comparison.

  With a Jetson bundle, the ancestor's ships beside it (export/jetson_ancestor/),
  so jetson_trt.py on the device can time the two interleaved.
  """
  ancestor_formats = COMPARISON_FORMATS + (("jetson",) if ships_jetson(run.config) else ())
  exports = {
      "squishednet": (squishednet_dir, os.path.join(run.run_dir, EXPORT_DIR),
                      run.config.export.formats),
      "ancestor": (run.ancestor_dir, os.path.join(run.ancestor_dir, EXPORT_DIR), ancestor_formats),
  }
  member_formats = tuple(name for name in export_lib.parse_formats(run.config.export.formats,
                                                                  with_data=True)
                         if name != "jetson")
  exports.update({m.name: (m.squishednet_dir(run.evolution_config), m.export_dir, member_formats)
                  for m in family_lib.others(list(family))})
  exports.update({name: (directory, os.path.join(directory, EXPORT_DIR), COMPARISON_FORMATS)
                  for name, directory in run.baseline_dirs.items()})
  return exports


def export_stage(run: Run, stage: Stages, exports: Exports) -> None:
  """Stage 5: every model of `exports` exported (`export_models`)."""
  jetson = ships_jetson(run.config)
  reference_bundle = os.path.join(run.run_dir, EXPORT_DIR, jetson_lib.REFERENCE_BUNDLE_DIR)

  def export():
    todo = {name: e for name, e in exports.items() if not exported(e[1], e[2])}
    pool_size = 1 if run.strategy is not None else min(run.evolution_config.workers, len(todo))
    with workers_lib.WorkerPool(max(1, pool_size)) as pool:
      manifest = export_models(todo, pool, run.data_config, run.data.export_data, run.config)
    if manifest is not None:
      run.log(export_lib.summary_table(manifest))
    micro_budget_lib.log_exported_fit(run.evolution_config, exports["squishednet"][1], run.log)
    if jetson:
      jetson_lib.place_reference_bundle(
          os.path.join(exports["ancestor"][1], jetson_lib.BUNDLE_DIR), exports["squishednet"][1])

  stage("export", all(exported(e, f) for _, e, f in exports.values())
        and (not jetson or jetson_lib.is_bundle(reference_bundle)), export)


def export_models(todo: Exports,
                  pool: workers_lib.WorkerPool,
                  data_config: data_config_lib.DataConfig,
                  export_data: Callable[[], export_lib.ExportData],
                  config: JobConfig) -> Optional[Dict[str, Any]]:
  """Exports every model of `todo` ({name: (model_dir, export_dir, formats)}).

  With a pool of processes the exports run side by side (each conversion
  uses about a core): the SquishedNet's QAT fine-tune and the comparison
  models' exports go to the workers, which draw their own export data from
  `data_config` (an ExportData holds a tf.data pipeline), while this process
  converts the SquishedNet's other formats and takes the QAT file when its
  turn comes. In process they run one after the other on `export_data()`.

  Returns:
    The SquishedNet's manifest, or None when it was not in `todo`.
  """
  export = config.export
  common = dict(qat_epochs=export.qat_epochs, qat_learning_rate=export.qat_learning_rate,
                overwrite=True)
  if pool.in_process:
    common["data"] = export_data()
  else:
    common.update(data_config=data_config, calibration_images=export.calibration_images)
  qat = None
  if ("squishednet" in todo and not pool.in_process
      and "qat_int8" in export_lib.parse_formats(todo["squishednet"][2], with_data=True)):
    qat = pool.submit(export_lib.qat_int8_artefact, todo["squishednet"][0], data_config,
                      export.qat_epochs, export.qat_learning_rate, export.calibration_images)
  others = [pool.submit(export_lib.export_all, model_dir, export_dir, formats=formats, **common)
            for name, (model_dir, export_dir, formats) in todo.items() if name != "squishednet"]
  manifest = None
  if "squishednet" in todo:
    model_dir, export_dir, formats = todo["squishednet"]
    manifest = export_lib.export_all(
        model_dir, export_dir, formats=formats, data=export_data(),
        qat_epochs=export.qat_epochs, qat_learning_rate=export.qat_learning_rate,
        overwrite=True, qat_result=qat.result if qat is not None else None)
  for future in others:
    future.result()  # re-raises a worker's error
  return manifest


def exported(export_dir: str, formats: Optional[Sequence[str]]) -> bool:
  """A complete export holding every format asked for (None: whatever it holds)."""
  if not export_lib.is_complete(export_dir):
    return False
  if formats is None:
    return True
  manifest = records.ExportManifest.from_json(
      files_lib.read_json(os.path.join(export_dir, export_lib.MANIFEST_FILE)))
  return all(name in manifest.formats
             for name in export_lib.parse_formats(formats, with_data=True))
