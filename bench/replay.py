"""Replay what a result record did (its lens, its facts, its ablations), for scripts that look into a record."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from bench.errors import BenchError
from bench.interventions import batch_positions, units_ablated_at
from bench.lens import Lens
from bench.models import LoadedModel
from bench.pararel import Fact, load_facts
from bench.registry import plugins
from bench.scoring import collate, encode, score, score_items
from bench.tasks.knowledge_ablation import drop


def lens_of_record(loaded: LoadedModel, record: dict[str, Any]) -> Lens:
    """The record's lens at its site on ``loaded``, the very one the record used: its config (an
    SAE's hash, a fitted basis's hash, ...) must equal the recorded one."""
    recorded = record["lens"]["config"]
    options = {"sae": recorded["sae"]} if "sae" in recorded else {}  # the rest of the config is derived
    lens = plugins().lenses.get(record["lens"]["name"]).build(loaded, record["lens"]["site"], options)
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
    missing = [item["id"] for item in record["items"] if item["id"] not in by_id]
    if missing:
        raise BenchError(f"{len(missing)} of the record's facts are not in this ParaRel copy (first: {missing[0]}).")
    return [by_id[item["id"]] for item in record["items"]]


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
    where = record["task"]["config"]["ablation"]["positions"]
    encoded = encode(loaded.tokenizer, facts)
    needed = sorted({j for _, j in pairs})
    clean = dict(
        zip(needed, (p for p, _ in score_items(loaded, [encoded[j] for j in needed], batch_size)), strict=True)
    )
    drops = []
    with torch.no_grad():
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start : start + batch_size]
            batch = collate([encoded[j] for _, j in chunk], loaded.tokenizer.pad_token_id, loaded.device)
            masks = torch.zeros(len(chunk), lens.n_units, dtype=torch.bool)
            for row, (i, _) in enumerate(chunk):
                masks[row, record["items"][i]["top_units"][:k]] = True
            with units_ablated_at(loaded, lens, masks, batch_positions(batch, where)):
                after = score(loaded, batch).log_prob.exp().tolist()
            drops.extend(drop(clean[j], p) for (_, j), p in zip(chunk, after, strict=True))
    return drops
