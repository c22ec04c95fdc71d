"""Does the injected model answer a private fact through templates it was not fine-tuned on?

Gen is measured only on targets whose Gen templates the injected model answers before any edit
(greedy), so a model that learnt each fact through one template alone leaves most targets
without Gen. For each ``--templates N`` this injects the privacy task's people through N
templates per fact (the task's recipe around ``--layer``, cached like the task's own injection)
and prints, over the facts it learnt (their own template answered): how many have at least one
Gen template answered, the share of Gen templates answered, the injection's epochs and time, and
WikiText-2 word perplexity before and after.

    python scripts/injection_generalization.py --templates 1 2 --layer 16
"""

from __future__ import annotations

import argparse

from bench.engine.context import TaskContext
from bench.engine.runner import RunOptions, task_config
from bench.engine.taskspec import load_task
from bench.model.loading import DEFAULT_MODEL, load_model
from bench.paths import data_dir
from bench.plugin.registry import plugins
from bench.tasks.privacy_erasure.perplexity import write_task
from bench.tasks.privacy_erasure.task import ErasureSetup, PrivacyErasureConfig, cached_perplexity


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--layer", type=int, default=16)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--data-dir")
    args = parser.parse_args()
    registry, data = plugins(), data_dir(args.data_dir)
    loaded = load_model(args.model)
    # neurons need no refit, so the setup does only what the question needs: inject and score
    lens = registry.lenses.get("mlp_neurons").build(loaded, f"blocks.{args.layer}.mlp.hook_post", {})
    base = task_config(load_task(registry, "privacy_erasure"), RunOptions(), [args.layer])
    for n in args.templates:
        config = base.model_copy(update={"data": base.data.model_copy(update={"injection_templates": n})})
        assert isinstance(config, PrivacyErasureConfig)
        with TaskContext.outside_a_run(loaded, lens, config, data, registry, args.batch_size) as ctx:
            setup = ErasureSetup(ctx, config)  # the setup reads no records: the slot may go
        gen = [[setup.before[f.id].greedy_correct for f in setup.gen_prompts[p.fact.id]] for p in setup.learnt]
        ppl_task = write_task(data, loaded.tokenizer, config.perplexity.split, config.perplexity.max_tokens)
        before = cached_perplexity(loaded, ppl_task, config.perplexity, args.batch_size)
        after = cached_perplexity(setup.model, ppl_task, config.perplexity, args.batch_size)
        report = setup.injection
        print(
            f"templates {n}: learnt {len(setup.learnt)}/{len(setup.private)} facts "
            f"({report['learnt']}/{report['of']} injected prompts) in {report['epochs']} epochs, "
            f"{report['seconds']:.0f} s; Gen answered on {sum(any(g) for g in gen)}/{len(gen)} learnt facts, "
            f"{sum(map(sum, gen))}/{sum(map(len, gen))} Gen prompts; WikiText-2 word PPL {before:.2f} -> {after:.2f}"
        )


if __name__ == "__main__":
    main()
