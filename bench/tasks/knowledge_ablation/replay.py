"""Replay what a result record did (its lens, its facts, its ablations), for scripts that look into a record."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from bench.data.pararel import Fact, load_facts
from bench.engine.records import record_items
from bench.errors import BenchError
from bench.model.lens import Lens
from bench.model.loading import LoadedModel
from bench.model.scoring import encode, score_items
from bench.tasks.knowledge_ablation.task import ablate, drop

if TYPE_CHECKING:
    from bench.plugin.registry import Plugins


def lens_of_record(loaded: LoadedModel, record: dict[str, Any], plugins: Plugins) -> Lens:
    """The record's lens at its site on ``loaded``, the very one the record used: its config (an
    SAE's hash, a fitted basis's hash, ...) must equal the recorded one."""
    recorded = record["lens"]["config"]
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


def facts_of_record(record: dict[str, Any], data_dir: Path | None) -> list[Fact]:
    """A knowledge_ablation record's facts, in its order: it keeps their ids, so they are drawn again
    from ParaRel as the task drew them."""
    config = record["task"]["config"]
    data = config["data"]
    drawn = load_facts(
        data_dir, data["relations"], data["patterns_per_relation"], data["tuples_per_relation"], config["seed"]
    )
    by_id = {fact.id: fact for fact in drawn}
    items = record_items(record)
    missing = [item["id"] for item in items if item["id"] not in by_id]
    if missing:
        raise BenchError(f"{len(missing)} of the record's facts are not in this ParaRel copy (first: {missing[0]}).")
    return [by_id[item["id"]] for item in items]


def replayed_drops(
    loaded: LoadedModel,
    lens: Lens,
    record: dict[str, Any],
    facts: Sequence[Fact],
    pairs: Sequence[tuple[int, int]],
    k: int,
    batch_size: int,
) -> list[float]:
    """For each (i, j): ΔProb of fact j when fact i's top-k units of the record are ablated, at the
    record's positions. (i, i) gives back the record's own ΔProb@k."""
    encoded = encode(loaded.tokenizer, facts)
    needed = sorted({j for _, j in pairs})
    scored = score_items(loaded, [encoded[j] for j in needed], batch_size)
    clean = {j: p for j, (p, _) in zip(needed, scored, strict=True)}
    masks = torch.zeros(len(pairs), lens.n_units, dtype=torch.bool)
    for row, (i, _) in enumerate(pairs):
        masks[row, record_items(record)[i]["top_units"][:k]] = True
    where = record["task"]["config"]["ablation"]["positions"]
    after = ablate(loaded, lens, [encoded[j] for _, j in pairs], masks, where, batch_size, None, None).prob
    return [drop(clean[j], float(p)) for (_, j), p in zip(pairs, after, strict=True)]
