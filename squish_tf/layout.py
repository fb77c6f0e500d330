"""The run directory's names: its stages and the files and folders each writes."""



RESULTS_FILE = "results.json"
EVALUATION_FILE = "evaluation.json"
# Under baselines/: how width_scaled_latency's multiplier was matched (job.run.latency_match).
LATENCY_MATCH_FILE = "latency_match.json"
# Under baselines/: the width ladder's rungs, chosen once (job.ladder).
LADDER_FILE = "ladder.json"
STAGE_TIMES_FILE = "stage_times.json"
# What native libraries (the TFLite converter, LiteRT) print while a run converts and times
# models (squish_tf.runtime.native_log), kept off the console.
NATIVE_LOG_FILE = "native.log"
# The plan printed before the first training step: stages, budgets, estimated seconds.
PLAN_FILE = "plan.json"
ANCESTOR_DIR = "ancestor"
SQUISHEDNET_DIR = "squishednet"  # the final stage's model dir (squish_tf.evolve.polish)
EXPORT_DIR = "export"
# A training's Keras backup and TensorBoard logs sit beside the model dir it will become,
# named as the dir plus this (a fine-tune's adds ".attempt<k>" before it).
WORK_SUFFIX = ".work"


# The main job's stages, in the order it runs them (squish_tf.job uses this too).
STAGES = ("ancestor", "synthesis", "polish", "baselines", "export", "evaluation", "benchmark",
          "report")
