"""TFLite image-classifier metadata: what the app SDKs read from a .tflite file.

  content = metadata.with_metadata(content, labels_text, name="squeezenet")
  metadata.read_labels(content)          # -> ["circle", "square", ...]
  metadata.read_metadata(content)        # -> {"name": ..., "input": {...}, ...}

Every .tflite file of an export carries it (`exporter.export_all`): the
metadata flatbuffer of tflite-support's metadata_schema.fbs in the model's
`metadata` list under "TFLITE_METADATA", and the run's labels.txt appended to
the file as an uncompressed zip archive (the layout the Task Library, ML Kit,
Android Studio's ML binding and `tflite_support.metadata.MetadataDisplayer`
read). It says what `tflite_support.metadata_writers.image_classifier`'s
`create_for_inference` would:

  input   "image": RGB ImageProperties; NormalizationOptions mean 0, std 1
          (the models take pixels in [0, 255] as they are: float32, or uint8
          with scale 1, zero point 0 in the full-integer files); stats min 0,
          max 255. The tensor's type is the file's own (float32 or uint8).
  output  "probability": FeatureProperties, softmax probabilities (stats
          [0, 1] for float32, [0, 255] for uint8 = q / 256); labels.txt as its
          TENSOR_AXIS_LABELS file.

Written here, not by tflite-support: its 0.4.4 wheel pins protobuf < 4
(TensorFlow 2.21 needs protobuf 7) and its metadata C extensions need the
system's libusb-1.0. The schema and its generated Python are vendored in
`third_party/tflite_support/` (pure Python on `flatbuffers`); the model is
re-packed with TensorFlow's own TFLite schema (`schema_py_generated`), buffer
data kept 16-byte aligned as the converter writes it. The interpreter ignores
both the metadata and the archive: outputs are identical with and without.
"""

import io
import zipfile
from typing import Any, Dict, List, Optional, Union

import flatbuffers
import numpy as np
from tensorflow.lite.python import schema_py_generated as tflite_fb

from third_party.tflite_support import metadata_schema_py_generated as metadata_fb

METADATA_NAME = "TFLITE_METADATA"  # the model's metadata entry the readers look for
TFLITE_IDENTIFIER = b"TFL3"
METADATA_IDENTIFIER = b"M001"
# The largest version among the schema fields written here (all in 1.0.0; none of
# metadata_version.cc's later features: vocabulary files, subgraph process units,
# tensor groups, file versions, custom metadata).
MIN_PARSER_VERSION = "1.0.0"
LABELS_FILE = "labels.txt"
PIXEL_RANGE = (0.0, 255.0)
BUFFER_ALIGNMENT = 16
# The labels member's date in the archive (the zip format's earliest): not the clock, so that
# writing the same file twice gives the same bytes.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
DESCRIPTION = ("Identify the most prominent object in the image from a known set of "
               "categories.")
_TYPE_NAMES = {tflite_fb.TensorType.FLOAT32: "float32", tflite_fb.TensorType.UINT8: "uint8",
               tflite_fb.TensorType.INT8: "int8"}


class _AlignedBufferT(tflite_fb.BufferT):
  """A BufferT that packs its data 16-byte aligned (the generated Pack aligns to 1)."""

  def Pack(self, builder):  # pylint: disable=invalid-name
    data = None
    if self.data is not None and len(self.data):
      payload = np.asarray(self.data, np.uint8).tobytes()
      builder.StartVector(1, len(payload), BUFFER_ALIGNMENT)
      builder.head -= len(payload)
      builder.Bytes[builder.head:builder.head + len(payload)] = payload
      data = builder.EndVector(len(payload))
    tflite_fb.BufferStart(builder)
    if data is not None:
      tflite_fb.BufferAddData(builder, data)
    tflite_fb.BufferAddOffset(builder, self.offset)
    tflite_fb.BufferAddSize(builder, self.size)
    return tflite_fb.BufferEnd(builder)


def with_metadata(content: bytes, labels_text: str, name: str = "image_classifier",
                  description: str = DESCRIPTION, labels_file: str = LABELS_FILE) -> bytes:
  """`content` (a .tflite classifier) with image-classifier metadata and its labels file.

  Args:
    content: the .tflite bytes, one float32 or uint8 image input and one
      probabilities output. Metadata or an archive already there is replaced.
    labels_text: the labels file's text, one class name a line in output order.
    name: the model's name in the metadata.
    description: what the model does.
    labels_file: the associated file's name.
  """
  model = tflite_fb.ModelT.InitFromObj(tflite_fb.Model.GetRootAs(content, 0))
  graph = model.subgraphs[0]
  if len(graph.inputs) != 1 or len(graph.outputs) != 1:
    raise ValueError(f"Image-classifier metadata needs one input and one output; the model has "
                     f"{len(graph.inputs)} and {len(graph.outputs)}.")
  output_type = graph.tensors[graph.outputs[0]].type
  labels = labels_text.splitlines()
  classes = int(graph.tensors[graph.outputs[0]].shape[-1])
  if len(labels) != classes:
    raise ValueError(f"{len(labels)} labels for a model with {classes} classes.")
  packed = _metadata_buffer(name, description, output_type, labels_file)

  model.buffers = [_aligned(buffer) for buffer in model.buffers]
  model.metadata = model.metadata or []
  entry = next((m for m in model.metadata if _text(m.name) == METADATA_NAME), None)
  if entry is None:
    entry = tflite_fb.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers)
    model.buffers.append(_AlignedBufferT())
    model.metadata.append(entry)
  model.buffers[entry.buffer].data = np.frombuffer(packed, np.uint8)
  builder = flatbuffers.Builder(len(content) + len(packed) + 1024)
  builder.Finish(model.Pack(builder), file_identifier=TFLITE_IDENTIFIER)

  archive = io.BytesIO(bytes(builder.Output()))
  archive.seek(0, io.SEEK_END)
  member = zipfile.ZipInfo(labels_file, date_time=ZIP_DATE_TIME)
  member.external_attr = 0o600 << 16  # what writestr gives a member named by a string
  with zipfile.ZipFile(archive, "a", compression=zipfile.ZIP_STORED) as files:  # SDKs map it
    files.writestr(member, labels_text)
  return archive.getvalue()


def read_metadata(content: Union[bytes, bytearray]) -> Optional[Dict[str, Any]]:
  """The image-classifier metadata of a .tflite file as a dict (None without metadata)."""
  packed = metadata_buffer(content)
  if packed is None:
    return None
  root = metadata_fb.ModelMetadataT.InitFromPackedBuf(packed, 0)
  graph = root.subgraphMetadata[0]
  model_graph = tflite_fb.Model.GetRootAs(content, 0).Subgraphs(0)
  types = [[_TYPE_NAMES.get(model_graph.Tensors(index).Type(), "other") for index in indices]
           for indices in (model_graph.InputsAsNumpy(), model_graph.OutputsAsNumpy())]
  return {"name": _text(root.name), "description": _text(root.description),
          "min_parser_version": _text(root.minParserVersion),
          "input": [{**_tensor_summary(t), "type": kind}
                    for t, kind in zip(graph.inputTensorMetadata, types[0])],
          "output": [{**_tensor_summary(t), "type": kind}
                     for t, kind in zip(graph.outputTensorMetadata, types[1])],
          "associated_files": sorted(associated_files(content))}


def metadata_buffer(content: Union[bytes, bytearray]) -> Optional[bytes]:
  """The TFLITE_METADATA flatbuffer of a .tflite file, or None."""
  model = tflite_fb.Model.GetRootAs(content, 0)
  for index in range(model.MetadataLength()):
    entry = model.Metadata(index)
    if _text(entry.Name()) == METADATA_NAME:
      return model.Buffers(entry.Buffer()).DataAsNumpy().tobytes()
  return None


def associated_files(content: Union[bytes, bytearray]) -> Dict[str, bytes]:
  """{name: bytes} of the files appended to a .tflite file ({} without any)."""
  stream = io.BytesIO(content)
  if not zipfile.is_zipfile(stream):
    return {}
  with zipfile.ZipFile(stream) as files:
    return {name: files.read(name) for name in files.namelist()}


def read_labels(content: Union[bytes, bytearray]) -> List[str]:
  """The class names of the output's TENSOR_AXIS_LABELS file, in output order."""
  summary = read_metadata(content)
  if summary is None:
    raise ValueError("The .tflite file has no TFLITE_METADATA.")
  names = [f["name"] for f in summary["output"][0]["associated_files"]
           if f["type"] == "TENSOR_AXIS_LABELS"]
  if not names:
    raise ValueError("The output has no TENSOR_AXIS_LABELS file.")
  return associated_files(content)[names[0]].decode("utf-8").splitlines()


def manifest_entry(content: Union[bytes, bytearray]) -> Optional[Dict[str, Any]]:
  """What export.json records of a file's metadata (None: the file has none)."""
  summary = read_metadata(content)
  if summary is None:
    return None
  tensor_in, tensor_out = summary["input"][0], summary["output"][0]
  return {"schema": "tflite_support image classifier",
          "min_parser_version": summary["min_parser_version"],
          "input": {key: tensor_in[key] for key in ("name", "type", "normalization", "range")},
          "output": {key: tensor_out[key] for key in ("name", "type", "range")},
          "associated_files": summary["associated_files"]}


def _metadata_buffer(name: str, description: str, output_type: int, labels_file: str) -> bytes:
  image = metadata_fb.TensorMetadataT()
  image.name, image.description = "image", "Input image to be classified."
  image.content = _content(metadata_fb.ContentProperties.ImageProperties,
                           metadata_fb.ImagePropertiesT())
  image.content.contentProperties.colorSpace = metadata_fb.ColorSpaceType.RGB
  normalization = metadata_fb.ProcessUnitT()
  normalization.optionsType = metadata_fb.ProcessUnitOptions.NormalizationOptions
  normalization.options = metadata_fb.NormalizationOptionsT()
  normalization.options.mean, normalization.options.std = [0.0], [1.0]  # [0, 255] as it is
  image.processUnits = [normalization]
  image.stats = _stats(*PIXEL_RANGE)

  probability = metadata_fb.TensorMetadataT()
  probability.name = "probability"
  probability.description = "Probabilities of the labels respectively."
  probability.content = _content(metadata_fb.ContentProperties.FeatureProperties,
                                 metadata_fb.FeaturePropertiesT())
  probability.stats = _stats(0.0, 255.0 if output_type == tflite_fb.TensorType.UINT8 else 1.0)
  labels = metadata_fb.AssociatedFileT()
  labels.name = labels_file
  labels.description = "Labels for categories that the model can recognize."
  labels.type = metadata_fb.AssociatedFileType.TENSOR_AXIS_LABELS
  probability.associatedFiles = [labels]

  graph = metadata_fb.SubGraphMetadataT()
  graph.inputTensorMetadata, graph.outputTensorMetadata = [image], [probability]
  root = metadata_fb.ModelMetadataT()
  root.name, root.description = name, description
  root.subgraphMetadata = [graph]
  root.minParserVersion = MIN_PARSER_VERSION
  builder = flatbuffers.Builder(0)
  builder.Finish(root.Pack(builder), file_identifier=METADATA_IDENTIFIER)
  return bytes(builder.Output())


def _content(kind: int, properties) -> Any:
  content = metadata_fb.ContentT()
  content.contentPropertiesType, content.contentProperties = kind, properties
  return content


def _stats(low: float, high: float) -> Any:
  stats = metadata_fb.StatsT()
  stats.min, stats.max = [low], [high]
  return stats


def _aligned(buffer) -> _AlignedBufferT:
  aligned = _AlignedBufferT()
  aligned.data, aligned.offset, aligned.size = buffer.data, buffer.offset, buffer.size
  return aligned


def _text(value) -> Optional[str]:
  return value.decode("utf-8") if isinstance(value, bytes) else value


def _tensor_summary(tensor) -> Dict[str, Any]:
  summary: Dict[str, Any] = {"name": _text(tensor.name)}
  for unit in tensor.processUnits or ():
    if unit.optionsType == metadata_fb.ProcessUnitOptions.NormalizationOptions:
      summary["normalization"] = {"mean": [float(v) for v in unit.options.mean],
                                  "std": [float(v) for v in unit.options.std]}
  if tensor.stats is not None and tensor.stats.min is not None:
    summary["range"] = [float(tensor.stats.min[0]), float(tensor.stats.max[0])]
  summary["associated_files"] = [
      {"name": _text(f.name), "type": _FILE_TYPES.get(f.type, str(f.type))}
      for f in tensor.associatedFiles or ()]
  return summary


_FILE_TYPES = {value: key for key, value in vars(metadata_fb.AssociatedFileType).items()
               if not key.startswith("_")}
