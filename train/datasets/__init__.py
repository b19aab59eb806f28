"""The five public datasets and the phantoms, read into one ``Sample`` record.

A data spec selects them: ``refuge:PATH``, ``origa:PATH``, ``drishti:PATH``, ``rimone:PATH``,
``acrima:PATH``, ``phantom:PATH``, and ``csv:TABLE`` for a user's own photographs; several
joined by commas.
"""

from .sample import GLAUCOMA, NORMAL, DatasetLayoutError, Sample, vet_samples
from .specs import LOADERS, load_spec, load_specs, parse_specs
from .splits import Fold, hash_holdout, leave_one_dataset_out
from .table import write_table

__all__ = [
    "GLAUCOMA",
    "NORMAL",
    "LOADERS",
    "DatasetLayoutError",
    "Fold",
    "Sample",
    "hash_holdout",
    "leave_one_dataset_out",
    "load_spec",
    "load_specs",
    "parse_specs",
    "vet_samples",
    "write_table",
]
