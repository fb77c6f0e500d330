"""squish_tf: few-class SqueezeNets squished by deep evolutionary synthesis (Keras 3).

From Python (a notebook), the main job is one call with the `squish` command's flags
as keyword options and its defaults:

  import squish_tf
  results = squish_tf.run(run_name="demo", generations=2, target_size_mb=0.6)
  print(results)                       # the CLI's console summary
  results.squishednet.top1             # test-split top-1 of the SquishedNet

`squish_tf.RunResults.load(run_dir)` reads a finished run. See squish_tf/api.py.
Importing squish_tf (or squish_tf.net.spec) imports no TensorFlow: the API is loaded
on first use.
"""

_LAZY = ("RunResults", "ModelResult", "RunPlan", "plan", "defaults", "option_names")


def run(**options):
  """squish_tf.api.run: the main job with the `squish` command's flags as keywords."""
  from squish_tf import api  # pylint: disable=g-import-not-at-top

  return api.run(**options)


def __getattr__(name):
  if name in _LAZY:
    from squish_tf import api  # pylint: disable=g-import-not-at-top

    return getattr(api, name)
  raise AttributeError(f"module 'squish_tf' has no attribute {name!r}")


def __dir__():
  return sorted(list(globals()) + list(_LAZY))
