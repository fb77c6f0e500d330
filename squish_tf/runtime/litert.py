"""The one LiteRT runner: export parity and the benchmark use it, the latency model will too.

  runner = LiteRTRunner("export/model_int8.tflite", num_threads=2)
  probabilities = runner.predict(pixels)          # float32 [N, classes]
  call = runner.prepare(pixels[:1])               # a zero-argument callable for timing
  call()                                          # set_tensor + invoke + get_tensor

A runner loads a .tflite file (path or bytes) into
`ai_edge_litert.interpreter.Interpreter` (TensorFlow's `tf.lite.Interpreter`
is deprecated) with a fixed number of threads, resizes its input to the batch
it is given, feeds float or uint8 pixels in [0, 255], and hands back float32
outputs whatever the file's dtypes are.

Quantization, one rule for every caller. A quantized tensor holds
real = scale * (q - zero_point), so the input is quantized as TFLite's own
QUANTIZE kernel does it (reference_ops::AffineQuantize):

  q = clip(round(x / scale) + zero_point, dtype.min, dtype.max)

with `round` = std::round (half away from zero) applied to the float32
quotient; zero_point is added after rounding, so an odd zero point cannot
move a tie. An integer input without quantization parameters (scale 0) takes
the values as they are (scale 1, zero point 0). Integer outputs are
dequantized with (q - zero_point) * scale.

This module imports no TensorFlow, so tools that only run .tflite files stay
light.
"""

import os
from typing import Any, Callable, Dict, Optional, Sequence, Tuple, Union

import numpy as np

from squish_tf.runtime import native_log

DEFAULT_NUM_THREADS = 2


Model = Union[str, os.PathLike, bytes, bytearray]


class UnsupportedBatch(ValueError):
  """A .tflite file that cannot be resized to a batch size (e.g. a fixed-batch graph)."""


def quantize(values: np.ndarray, scale: float, zero_point: int, dtype: Any) -> np.ndarray:
  """Real values -> integers of `dtype`: clip(round(x / scale) + zero_point).

  Args:
    values: real values (pixels in [0, 255] here), any numeric dtype.
    scale: the tensor's quantization scale; 0 (no quantization) means the
      integers are the values themselves.
    zero_point: the tensor's zero point.
    dtype: an integer dtype (uint8, int8, int16, ...).

  Returns:
    An array of `dtype`, rounded half away from zero as TFLite's QUANTIZE
    kernel does, and clipped to the dtype's range.
  """
  dtype = np.dtype(dtype)
  if dtype.kind not in "iu":
    raise ValueError(f"quantize needs an integer dtype, got {dtype}.")
  if not scale:
    scale, zero_point = 1.0, 0
  # The quotient in float32, as the kernel computes it; rounding in float64 is
  # then exact (floor(|x| + 0.5) of a float32 value cannot round up wrongly).
  scaled = (np.asarray(values, np.float32) / np.float32(scale)).astype(np.float64)
  rounded = np.sign(scaled) * np.floor(np.abs(scaled) + 0.5)
  info = np.iinfo(dtype)
  return np.clip(rounded + int(zero_point), info.min, info.max).astype(dtype)


def dequantize(values: np.ndarray, scale: float, zero_point: int) -> np.ndarray:
  """Integers -> float32 real values: (q - zero_point) * scale; floats pass through as float32."""
  values = np.asarray(values)
  if values.dtype.kind in "iu" and scale:
    return ((values.astype(np.float32) - np.float32(zero_point)) * np.float32(scale))
  return values.astype(np.float32)


class LiteRTRunner:
  """Runs a .tflite classifier with LiteRT on float or uint8 pixels in [0, 255].

  Quantized inputs are quantized with the file's own scale and zero point
  (`quantize`), and quantized outputs dequantized, so every format returns
  float32. For results call `predict`; for timing, `prepare(images)` once and
  the returned callable in the loop (what it does is what is timed:
  set_tensor + invoke + get_tensor, with the input already quantized).

  Args:
    model: path of a .tflite file, or its bytes.
    num_threads: LiteRT CPU threads (fixed for the interpreter's life).
    reference_kernels: LiteRT's reference kernels instead of its optimized
      ones and XNNPACK (slow; the arithmetic TFLM's kernels also implement,
      so their int8 outputs can be compared bit for bit).
  """

  def __init__(self, model: Model, num_threads: int = DEFAULT_NUM_THREADS,
               reference_kernels: bool = False):
    from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top

    options = {"num_threads": num_threads}
    if reference_kernels:
      options["experimental_op_resolver_type"] = litert.OpResolverType.BUILTIN_REF
    self.name = "<bytes>" if isinstance(model, (bytes, bytearray)) else os.path.basename(str(model))
    with native_log.captured():  # LiteRT's delegate line goes to the run's log
      self._interpreter = _interpreter(litert, model, **options)
    self._model = model
    self.num_threads = num_threads
    inputs = self._interpreter.get_input_details()
    outputs = self._interpreter.get_output_details()
    if len(inputs) != 1 or len(outputs) != 1:
      raise ValueError(f"{self.name} has {len(inputs)} inputs and {len(outputs)} outputs; an "
                       "image classifier has one of each.")
    with native_log.captured():
      self._interpreter.allocate_tensors()
    self._batch: Optional[int] = None
    self.input_details = inputs[0]
    self.output_details = outputs[0]

  # -- what the file takes and gives -------------------------------------------

  @property
  def input_dtype(self) -> np.dtype:
    return np.dtype(self.input_details["dtype"])

  @property
  def input_shape(self) -> Sequence[int]:
    """[H, W, C] of one image."""
    return [int(v) for v in self.input_details["shape"][1:]]

  @property
  def input_size(self) -> Tuple[int, int]:
    """(height, width)."""
    height, width = self.input_shape[:2]
    return height, width

  @property
  def input_quantization(self) -> Optional[Tuple[float, int]]:
    """(scale, zero point) of a quantized input, else None."""
    scale, zero_point = self.input_details["quantization"]
    return (float(scale), int(zero_point)) if scale else None

  def input_info(self) -> Dict[str, Any]:
    """The input's dtype, and its scale and zero point when quantized (for benchmark.json)."""
    info: Dict[str, Any] = {"dtype": self.input_dtype.name}
    if self.input_quantization is not None:
      info["scale"], info["zero_point"] = self.input_quantization
    return info

  def io_summary(self) -> Dict[str, Any]:
    """dtype, shape and (scale, zero point) of the input and output, for manifests."""
    return {"input": _tensor_summary(self.input_details),
            "output": _tensor_summary(self.output_details)}

  def op_counts(self) -> Dict[str, int]:
    """{op name: count} of this file (see `op_counts`)."""
    return op_counts(self._model)

  # -- running -----------------------------------------------------------------

  def resize(self, batch: int) -> None:
    """Resizes the input to `batch` images (no-op when it already is).

    Raises:
      UnsupportedBatch: the graph cannot take that batch size.
    """
    if batch == self._batch:
      return
    try:
      self._interpreter.resize_tensor_input(self.input_details["index"],
                                            [batch, *self.input_shape])
      with native_log.captured():
        self._interpreter.allocate_tensors()
    except (RuntimeError, ValueError) as error:
      self._batch = None
      raise UnsupportedBatch(f"{self.name} cannot run batch {batch}: {error}") from None
    self.input_details = self._interpreter.get_input_details()[0]
    self.output_details = self._interpreter.get_output_details()[0]
    self._batch = batch

  def quantize_input(self, images: np.ndarray) -> np.ndarray:
    """Pixels as the input tensor takes them: float32, or quantized by `quantize`."""
    pixels = np.asarray(images)
    dtype = self.input_dtype
    if dtype.kind == "f":
      return pixels.astype(dtype)
    quantization = self.input_quantization
    if (dtype == np.uint8 and pixels.dtype == np.uint8 and quantization is not None
        and quantization == (1.0, 0)):
      return pixels  # raw camera bytes, the common case: quantize() would return them unchanged
    scale, zero_point = quantization or (0.0, 0)
    return quantize(pixels, scale, zero_point, dtype)

  def set_input(self, images: np.ndarray) -> None:
    """Resizes the input to len(images) if needed and sets the (quantized) pixels."""
    pixels = np.asarray(images)
    if pixels.ndim != 4 or list(pixels.shape[1:]) != self.input_shape:
      raise ValueError(f"Expected images of shape [batch, {', '.join(map(str, self.input_shape))}]"
                       f", got {list(pixels.shape)}.")
    self.resize(pixels.shape[0])
    self._interpreter.set_tensor(self.input_details["index"], self.quantize_input(pixels))

  set_batch = set_input  # the name export code and benchmarks/ scripts use

  def set_quantized(self, values: np.ndarray) -> None:
    """Sets an input already in the tensor's dtype (from `quantize_input`), resizing if needed."""
    self.resize(values.shape[0])
    self._interpreter.set_tensor(self.input_details["index"], values)

  def invoke(self) -> None:
    self._interpreter.invoke()

  def raw_output(self) -> np.ndarray:
    """The last invoke's output as the file stores it (uint8/int8 for full-integer files)."""
    return self._interpreter.get_tensor(self.output_details["index"])

  def dequantize_output(self, raw: np.ndarray) -> np.ndarray:
    scale, zero_point = self.output_details["quantization"]
    return dequantize(raw, scale, zero_point)

  def output(self) -> np.ndarray:
    """The last invoke's output, dequantized to float32 [batch, classes]."""
    return self.dequantize_output(self.raw_output())

  def predict(self, images: np.ndarray, batch_size: int = 64) -> np.ndarray:
    """Probabilities float32 [N, classes] of float or uint8 pixels in [0, 255]."""
    images = np.asarray(images)
    results = []
    for start in range(0, len(images), batch_size):
      self.set_input(images[start:start + batch_size])
      self.invoke()
      results.append(self.output())
    if not results:
      return np.zeros((0, int(self.output_details["shape"][-1])), np.float32)
    return np.concatenate(results)

  def prepare(self, images: np.ndarray) -> Callable[[], np.ndarray]:
    """A zero-argument call that runs `images` once: what a timing loop repeats.

    The pixels are quantized here, once; each call sets them, invokes and
    reads the raw output, resizing first only if another call changed the
    batch size in between (callables of several batch sizes may alternate).

    Raises:
      UnsupportedBatch: the graph cannot take len(images).
    """
    pixels = np.asarray(images)
    if pixels.ndim != 4 or list(pixels.shape[1:]) != self.input_shape:
      raise ValueError(f"Expected images of shape [batch, {', '.join(map(str, self.input_shape))}]"
                       f", got {list(pixels.shape)}.")
    self.resize(pixels.shape[0])
    feed = np.ascontiguousarray(self.quantize_input(pixels))

    def call() -> np.ndarray:
      self.set_quantized(feed)
      self._interpreter.invoke()
      return self._interpreter.get_tensor(self.output_details["index"])

    return call


def op_counts(model: Model) -> Dict[str, int]:
  """{builtin op name: count} of a .tflite file (path or bytes), e.g. {"CONV_2D": 26, ...}.

  What the LiteRT interpreter will run (custom ops by their custom name); a
  model whose batch norm was not folded shows it as MUL / ADD / SUB / RSQRT.
  """
  from ai_edge_litert import interpreter as litert  # pylint: disable=g-import-not-at-top

  with native_log.captured():
    interpreter = _interpreter(litert, model)
  counts: Dict[str, int] = {}
  for op in interpreter._get_ops_details():  # pylint: disable=protected-access
    counts[op["op_name"]] = counts.get(op["op_name"], 0) + 1
  return dict(sorted(counts.items()))


def run_tflite(model: Model, images: np.ndarray, num_threads: int = DEFAULT_NUM_THREADS,
               batch_size: int = 64) -> np.ndarray:
  """Probabilities of `images` (float or uint8 pixels in [0, 255]) from a .tflite model."""
  return LiteRTRunner(model, num_threads=num_threads).predict(images, batch_size=batch_size)


def _interpreter(litert, model: Model, **options):
  """A LiteRT interpreter of a .tflite file's path or bytes."""
  if isinstance(model, (bytes, bytearray)):
    return litert.Interpreter(model_content=bytes(model), **options)
  return litert.Interpreter(model_path=str(model), **options)


def _tensor_summary(details: Dict[str, Any]) -> Dict[str, Any]:
  scale, zero_point = details["quantization"]
  summary = {"name": details["name"], "dtype": np.dtype(details["dtype"]).name,
             "shape": [int(v) for v in details["shape_signature"]]}
  if scale:
    summary.update({"scale": float(scale), "zero_point": int(zero_point)})
  return summary
