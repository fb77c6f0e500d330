"""How far one generation shrinks (env_mode=target): towards the family's targets over the
generations left, and as far as the microcontroller budgets need (pure, given the table)."""

import dataclasses
from typing import Any, Mapping, Optional, Sequence

from squish_tf.bench import latency_table as latency_table_lib
from squish_tf.evolve import encoding as synthesis
from squish_tf.evolve import environment as environment_lib
from squish_tf.evolve import micro_budget as micro_budget_lib
from squish_tf.evolve.config import TARGET_MARGIN, EvolutionConfig
from squish_tf.evolve.targets import TargetFamily
from squish_tf.net import spec as spec_lib


def generation_synthesis(synth: synthesis.SynthesisConfig, config: EvolutionConfig,
                         parent_spec: spec_lib.NetSpec, generation: int,
                         table: Optional[latency_table_lib.LatencyTable] = None,
                         ancestor_spec: Optional[spec_lib.NetSpec] = None,
                         targets: Optional[TargetFamily] = None,
                         strengths: Optional[Mapping[str, Any]] = None,
                         met: Sequence[Mapping[str, Any]] = (),
                         parent_speedup: Optional[float] = None
                         ) -> synthesis.SynthesisConfig:
  """env_mode=target with no fixed fraction: shrink evenly towards the targets (`targets`;
  None: `config`'s, the ancestor's ms predicted by `table`) over the generations left, and
  at least as far as this generation's children must to fit the microcontroller budgets (the
  expected child of the parent's filter `strengths`; None: the parent uniformly thinner).

  A family's members not met by the chosen offspring so far (`met`) share the generations
  left evenly: the pace reaches the first of them within its share, and the last within all
  of them (a family of one: the last within the generations left). A latency target is
  aimed at from `parent_speedup`, the parent's speed-up over the ancestor measured on the
  table's clock, when given (`Targets.goals`: as `Targets.met` judges it)."""
  if synth.env_mode != "target":
    return synth
  if config.target_fraction is not None:
    return dataclasses.replace(synth, target_fraction=config.target_fraction)
  if targets is None:
    targets = TargetFamily.of(config, None if table is None
                             else table.predict(ancestor_spec or parent_spec))
  unmet = targets.unmet(met) or ([len(targets.members) - 1] if targets.any else [])
  left = config.generations - generation + 1
  paces = ([] if not unmet else
           [(targets.members[unmet[0]].goals(parent_spec, table, parent_speedup),
             max(1, left // len(unmet))),
            (targets.members[unmet[-1]].goals(parent_spec, table, parent_speedup), left)])
  goals = paces[0][0] if paces else {}
  budget = micro_budget_lib.MicroBudget.of(config)
  if not goals and not budget.any:
    return synth
  # Never below what the floors allow (that would be refused), never a no-op.
  floor = environment_lib.floor_fraction(parent_spec, synth, table)
  fraction = synth.target_fraction
  if goals:
    # In the units target mode measures (--cost). A target in the other unit is
    # the best guess there is (parameters and MACs shrink alike when every layer
    # does); with both, the one --cost measures. Aimed a little below: a draw's
    # size spreads a few percent around its expectation, and one
    # above the target would not meet it.
    pace = min((TARGET_MARGIN * g.get(synth.cost, min(g.values()))) ** (1.0 / steps)
               for g, steps in paces if g)
    fraction = max(min(0.95, max(0.2, pace)), (floor + 1.0) / 2 if floor > 0.9
                   else floor * 1.02)
  # The microcontroller budgets hold for every chosen child: this generation's must fit.
  fits = budget.fitting_fraction(parent_spec, synth, table, strengths)
  if fits is not None:
    fraction = max(min(fraction, micro_budget_lib.MARGIN * fits), floor * 1.02)
  return dataclasses.replace(synth, target_fraction=fraction)
