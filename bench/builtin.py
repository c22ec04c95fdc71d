"""The harness's own plugin: its task types and the repository's tasks/ folder.

Registered in bench.registry exactly like an entry-point plugin (pytest's default plugins
are the model); lenses are not here: every lens, built-in or not, comes through entry points.
"""

from __future__ import annotations

from pathlib import Path

from bench.erasure.methods import BUILTIN_METHODS, ErasureMethod
from bench.hookspecs import hookimpl
from bench.paths import REPO_ROOT
from bench.registry import TaskType
from bench.tasks import (
    interpretability,
    knowledge_ablation,
    monosemanticity,
    polysemanticity,
    privacy_erasure,
    sparse_probing,
)


@hookimpl
def bench_task_types() -> list[TaskType]:
    return [
        TaskType(
            name="knowledge_ablation",
            description="ΔProb: drop in p(answer) when a fact's top-k attributed units are ablated.",
            config_model=knowledge_ablation.KnowledgeAblationConfig,
            run=knowledge_ablation.run,
        ),
        TaskType(
            name="monosemanticity",
            description="Cohen's d and AUROC of top units' activations on related versus unrelated facts.",
            config_model=monosemanticity.MonosemanticityConfig,
            run=monosemanticity.run,
        ),
        TaskType(
            name="interpretability",
            description="IS: correlation of a judge's simulated activations with the unit's true ones.",
            config_model=interpretability.InterpretabilityConfig,
            run=interpretability.run,
        ),
        TaskType(
            name="sparse_probing",
            description="Probe F1 of k units (k = 1..64) for UD token features and ParaRel relations.",
            config_model=sparse_probing.SparseProbingConfig,
            run=sparse_probing.run,
        ),
        TaskType(
            name="polysemanticity",
            description="Clusters of each unit's neuron-embedded dataset examples: count, spread, intra/inter.",
            config_model=polysemanticity.PolysemanticityConfig,
            run=polysemanticity.run,
        ),
        TaskType(
            name="privacy_erasure",
            description="Rel / Gen / Loc / ΔPPL of erasing injected private facts by editing a lens's units.",
            config_model=privacy_erasure.PrivacyErasureConfig,
            run=privacy_erasure.run,
        ),
    ]


@hookimpl
def bench_erasure_methods() -> list[type[ErasureMethod]]:
    return list(BUILTIN_METHODS)


@hookimpl
def bench_task_dirs() -> list[Path]:
    tasks = REPO_ROOT / "tasks"
    return [tasks] if tasks.is_dir() else []
