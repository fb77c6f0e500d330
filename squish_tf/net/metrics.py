"""Model metrics that need no TensorFlow: size, NetScore, efficiencies."""

import math
from typing import Any, Dict, Optional

from squish_tf.net import spec as spec_lib


def size_mb(params: int) -> float:
  """float32 weight size in MB (1e6 bytes): params * 4 / 1e6, as the paper reports."""
  return params * 4 / 1e6


def netscore(top1: float, params: int, macs: int) -> float:
  """NetScore (Wong, 2018): 20 log10(a^2 / (sqrt(p) sqrt(m))).

  Args:
    top1: top-1 accuracy as a fraction in [0, 1] (converted to % here).
    params: parameters (converted to millions).
    macs: multiply-accumulates (converted to billions).
  """
  accuracy = 100.0 * top1
  if accuracy <= 0 or params <= 0 or macs <= 0:
    return float("-inf")
  return 20.0 * math.log10(accuracy**2 / (math.sqrt(params / 1e6) * math.sqrt(macs / 1e9)))


def spec_metrics(spec: spec_lib.NetSpec,
                 ancestor: Optional[spec_lib.NetSpec] = None) -> Dict[str, Any]:
  """Size figures of a spec, plus efficiencies relative to `ancestor` when given."""
  params = spec.params()
  out: Dict[str, Any] = {
      "params": params,
      "size_mb": size_mb(params),
      "macs": spec.macs(),
      "filters": spec.num_filters(),
  }
  if ancestor is not None:
    out["synaptic_efficiency"] = ancestor.params() / params
    out["cluster_efficiency"] = ancestor.num_filters() / spec.num_filters()
  return out


def model_metrics(spec: spec_lib.NetSpec, evaluation: Dict[str, float],
                  ancestor: Optional[spec_lib.NetSpec] = None) -> Dict[str, Any]:
  """spec_metrics + evaluation (top1, top5, loss) + NetScore."""
  out = spec_metrics(spec, ancestor)
  out.update(evaluation)
  if "top1" in evaluation:
    out["netscore"] = netscore(evaluation["top1"], out["params"], out["macs"])
  return out
