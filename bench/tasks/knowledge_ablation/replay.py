"""Rebuild a result record's lens, for scripts that look into a record."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from bench.engine.records import lens_weights
from bench.errors import BenchError
from bench.model.lens import Lens
from bench.model.loading import LoadedModel

if TYPE_CHECKING:
    from bench.plugin.registry import Plugins


def lens_of_record(loaded: LoadedModel, record: dict[str, Any], plugins: Plugins) -> Lens:
    """The record's lens at its site on ``loaded``, the very one the record used (for a task that
    refits the lens, the refitted weights its edits used): its config (an SAE's hash, a fitted
    basis's hash, ...) must equal the recorded one."""
    recorded = lens_weights(record)
    options = {"sae": recorded["sae"]} if "sae" in recorded else {}  # the rest of the config is derived
    lens = plugins.lenses.get(record["lens"]["name"]).build(loaded, record["lens"]["site"], options)
    built = json.loads(json.dumps(lens.config()))  # as the record stores it (tuples become lists)
    differ = sorted(key for key in built.keys() | recorded.keys() if built.get(key) != recorded.get(key))
    if differ:
        raise BenchError(
            f"the {record['lens']['name']} lens built now is not the one the record used ({', '.join(differ)} "
            "differ: an SAE retrained or a basis refitted since?); rebuild it with the record's recipe or rerun it."
        )
    return lens
