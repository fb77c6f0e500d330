"""Deep evolutionary synthesis: from a trained parent to thinner offspring, generation
after generation, and the final stage that makes the SquishedNet.

Modules:
  encoding     filter strengths -> survival probabilities -> survivors (docs/method.md);
               `SynthesisConfig`. numpy only.
  environment  filter costs, environmental factors, expected child cost, targets and
               `sample_offspring`. numpy only.
  surgery      the TensorFlow edge: strengths of a Keras model and the child model
               whose weights are sliced from the parent's.
  config       `EvolutionConfig`.
  candidates   one offspring: sample, inherit, fine-tune (here or in a worker).
  lineage      lineage.json, candidate ids and the run identity a resume checks.
  evolution    `evolve`: the generation loop, selection and resume.
  polish       the final stage (`--final_init`): the winner's polish, its widths from scratch, or the better of both.

Importing this package, `encoding` or `environment` imports no TensorFlow.
"""
