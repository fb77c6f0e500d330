"""Deep evolutionary synthesis: from a trained parent to thinner offspring, generation
after generation, and the final stage that makes the SquishedNet.

Modules:
  encoding     filter strengths -> survival probabilities -> survivors (docs/method.md);
               `SynthesisConfig`. numpy only.
  registries   the costs (--cost), environment modes (--env_mode) and selection rules
               (--select): one record each, in one registry each. No TensorFlow.
  environment  filter costs, environmental factors, expected child cost, targets and
               `sample_offspring`. numpy only.
  surgery      the TensorFlow edge: strengths of a Keras model and the child model
               whose weights are sliced from the parent's.
  config       `EvolutionConfig`.
  candidates   one offspring: sample, inherit, fine-tune (here or in a worker).
  lineage      lineage.json, candidate ids and the run identity a resume checks.
  evolution    `evolve`: the generation loop, selection and resume.
  selection    the selection rules' rankings (`registries.selections`).
  polish       the final stage (`--final_init`): the winner's polish, its widths from scratch, or the better of both.

Importing this package, `encoding` or `environment` imports no TensorFlow.
"""
