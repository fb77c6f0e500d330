"""The export formats: one `ExportFormat` record each, in one registry.

A record says what a format is called (`name`: the --formats value), how the report and
the benchmark name its file (`label`, `artefact`), what it needs (training images, a
SqueezeNet spec) and which function writes it (`write`). `export_all`, --formats and the
report read them from here; adding a format is one `register(ExportFormat(...))`, in the
package or outside it. This module imports no TensorFlow: the built-in formats name
their writers in `squish_tf.export.writers` by reference, loaded when one is written.

Formats are written in registration order, those marked `last` after the others, and
listed in the manifest in registration order.
"""

import dataclasses
from typing import Any, Callable, Optional, Tuple

from squish_tf import registry as registry_lib

WRITERS = "squish_tf.export.writers"
# The trained Keras model every export starts from: an artefact the benchmark times and
# the report lists first, though no format writes it.
SOURCE_ARTEFACT, SOURCE_LABEL = "keras", "Keras"


@dataclasses.dataclass(frozen=True)
class ExportFormat:
  """One export format.

  Attributes:
    name: the --formats value, and its key in export.json's "formats".
    label: what the report calls its file.
    write: `write(export: writers.Export, name: str) -> manifest entry dict`: writes
      the format's files under `export.work` and describes them (`files`, `bytes`,
      and `parity` with the Keras model where it can run). A callable, or
      "package.module:function" (`registry.load`).
    artefact: the benchmark's name for its file ("tflite_<stem>" for
      `model_<stem>.tflite`, `bench.artefacts.artefact_name`), None when the benchmark
      does not time it.
    needs_data: it needs training images (calibration, fine-tuning).
    needs_spec: it needs a SqueezeNet-family model (spec.json).
    tflite: a .tflite file (the manifest gives its bytes against fp32's).
    last: written after every other format (QAT: importing tfmot switches tf.keras to
      tf_keras for the whole process).
    unavailable: `() -> str or None`: why this machine cannot make it (None: it can);
      None for a format every machine makes. A callable or a reference.
  """

  name: str
  label: str
  write: registry_lib.Reference
  artefact: Optional[str] = None
  needs_data: bool = False
  needs_spec: bool = False
  tflite: bool = False
  last: bool = False
  unavailable: Optional[registry_lib.Reference] = None

  def writer(self) -> Callable[..., Any]:
    return registry_lib.load(self.write)

  def unavailable_reason(self) -> Optional[str]:
    """Why this machine cannot make the format, or None when it can."""
    return None if self.unavailable is None else registry_lib.load(self.unavailable)()


REGISTRY: registry_lib.Registry[ExportFormat] = registry_lib.Registry("export format",
                                                                      "--formats")
register = REGISTRY.register
unregister = REGISTRY.unregister
lookup = REGISTRY.lookup

register(ExportFormat("saved_model", "SavedModel", f"{WRITERS}:write_saved_model",
                      artefact="saved_model"))
register(ExportFormat("fp32", "TFLite fp32", f"{WRITERS}:write_tflite", artefact="tflite_fp32",
                      tflite=True))
register(ExportFormat("fp16", "TFLite fp16", f"{WRITERS}:write_tflite", artefact="tflite_fp16",
                      tflite=True))
register(ExportFormat("dynamic", "TFLite dynamic range", f"{WRITERS}:write_tflite",
                      artefact="tflite_dynamic", tflite=True))
register(ExportFormat("int8", "TFLite int8", f"{WRITERS}:write_tflite_int8",
                      artefact="tflite_int8", needs_data=True, tflite=True))
register(ExportFormat("qat_int8", "TFLite QAT int8", f"{WRITERS}:write_qat_int8",
                      artefact="tflite_qat_int8", needs_data=True, needs_spec=True, tflite=True,
                      last=True))
register(ExportFormat("jetson", "Jetson bundle (frozen graph)", f"{WRITERS}:write_jetson",
                      needs_spec=True))
register(ExportFormat("tftrt", "TF-TRT FP16 SavedModel", f"{WRITERS}:write_tftrt",
                      unavailable=f"{WRITERS}:tftrt_unavailable"))


def names() -> Tuple[str, ...]:
  """Every registered format's name, in registration order."""
  return REGISTRY.names()


def artefact_order() -> Tuple[str, ...]:
  """The benchmark's artefacts in table order: the Keras model, then each format's file."""
  return (SOURCE_ARTEFACT,) + tuple(f.artefact for f in REGISTRY if f.artefact)


def artefact_label(artefact: str) -> str:
  """ "TFLite int8" for "tflite_int8": what a reader calls an artefact (else its name)."""
  if artefact == SOURCE_ARTEFACT:
    return SOURCE_LABEL
  return next((f.label for f in REGISTRY if f.artefact == artefact), artefact)
