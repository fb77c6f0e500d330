"""Typed records of what a run writes and reads back: results.json (its models, candidates,
generations), lineage.json's candidates and the export manifest's format entries.

Each record is a dataclass with `to_json()` (the dict the file holds) and `from_json(data)`
(tolerant of older files); a file's layout carries a `version` (`RESULTS_VERSION`,
`LINEAGE_VERSION`, `MANIFEST_VERSION`) that its nested records share. Imports no TensorFlow
and no numpy.
"""

from squish_tf.records.base import BY_BATCH, BY_RESOLUTION, Codec, Record
from squish_tf.records.export import MANIFEST_VERSION, ExportManifest, FormatEntry
from squish_tf.records.lineage import LINEAGE_VERSION, Candidate, Lineage
from squish_tf.records.results import (RESULTS_VERSION, CandidateResult, DatasetSummary,
                                       Generation, LatencyModel, ModelResult, Results)

__all__ = ["BY_BATCH", "BY_RESOLUTION", "Candidate", "CandidateResult", "Codec",
           "DatasetSummary", "ExportManifest", "FormatEntry", "Generation", "LINEAGE_VERSION",
           "LatencyModel", "Lineage", "MANIFEST_VERSION", "ModelResult", "RESULTS_VERSION",
           "Record", "Results"]
