"""Rebuild the lens a result record was computed with, for scripts that look into a record."""

from __future__ import annotations

from typing import Any

from bench.errors import BenchError
from bench.lens import Lens
from bench.models import LoadedModel
from bench.registry import plugins


def lens_of_record(loaded: LoadedModel, record: dict[str, Any]) -> Lens:
    """The record's lens at its site on ``loaded``; an SAE must be the very one the record used."""
    recorded = record["lens"]["config"]
    options = {"sae": recorded["sae"]} if "sae" in recorded else {}  # the rest of the config is derived
    lens = plugins().lenses.get(record["lens"]["name"]).build(loaded, record["lens"]["site"], options)
    if lens.config().get("sae_sha256") != recorded.get("sae_sha256"):
        raise BenchError(
            f"the SAE at {recorded['sae']} is not the one this record used (retrained since?); "
            "retrain it with the record's recipe or rerun the record."
        )
    return lens
