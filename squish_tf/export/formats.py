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
from typing import Any, Callable, List, Optional, Sequence, Tuple, Union

from absl import logging

from squish_tf import registry as registry_lib
from squish_tf.data import config as data_config_lib
from squish_tf.runtime import workers

WRITERS = "squish_tf.export.writers"
NO_DATA = ("", "none")  # --dataset values meaning "no data"
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


def has_data(data_config: Optional[data_config_lib.DataConfig]) -> bool:
  """Whether `data_config` gives training images (--dataset=none gives none)."""
  return data_config is not None and data_config.dataset.strip().lower() not in NO_DATA


def available_formats(with_data: bool = True) -> List[str]:
  """The formats this machine can produce (TF-TRT only where TensorFlow has TensorRT)."""
  return [f.name for f in REGISTRY
          if f.unavailable_reason() is None and (with_data or not f.needs_data)]


def parse_formats(formats: Union[None, str, Sequence[str]], with_data: bool) -> List[str]:
  """Validates a format list ("fp32,int8" or a sequence); None or "" means the default.

  The default is every format this machine can produce, without the ones that need
  training images (int8, qat_int8) when there is no data. Only a format that may be
  unavailable here (tftrt), named or by default, loads TensorFlow to ask.
  """
  names = formats.split(",") if isinstance(formats, str) else list(formats or ())
  names = [name.strip().lower() for name in names if name.strip()]
  if not names:
    return available_formats(with_data)
  known = REGISTRY.names()
  unknown = [name for name in names if name not in known]
  if unknown:
    raise ValueError(f"Unknown export format(s) {unknown}; known formats are {', '.join(known)} "
                     "(comma-separated, e.g. --formats=saved_model,int8).")
  if not with_data:
    needs_data = [name for name in names if lookup(name).needs_data]
    if needs_data:
      raise ValueError(f"Formats {needs_data} need training images (int8 calibration, QAT "
                       "fine-tuning), but no data was given; pass the data flags "
                       "(e.g. --dataset=shapes10 --image_size=<the model's>), or leave these "
                       "formats out.")
  asked = [lookup(name) for name in dict.fromkeys(names)]
  if any(f.unavailable is not None for f in asked) and logging.get_verbosity() < logging.INFO:
    # TensorFlow says whether this machine makes it: loaded without its start-up lines (absl
    # below INFO), as the mains and the worker processes load it.
    workers.import_tensorflow_quietly()
  for format_ in asked:
    reason = format_.unavailable_reason()
    if reason is not None:
      raise ValueError(f"Format {format_.name!r}: {reason}")
  return [name for name in known if name in names]
