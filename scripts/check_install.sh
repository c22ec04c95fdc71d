#!/usr/bin/env bash
# A new user's install, checked: lens-bench installed from this checkout, not editable, into a
# fresh venv outside it; then, from another folder, `bench list` shows every task and lens, and a
# task runs on a tiny model (tests/tiny.py builds it and its data). Run by .ci/run.
# FRESH_VENV reuses a venv that already holds torch and the dependencies (faster reruns).
set -euo pipefail
checkout=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
venv=${FRESH_VENV:-$work/venv}
say() { printf '[check_install] %s\n' "$*"; }
if [ ! -x "$venv/bin/python" ]; then
    say "fresh venv in $venv"
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check torch==2.13.0
fi
say "pip install $checkout (non-editable)"
"$venv/bin/pip" install -q --disable-pip-version-check --force-reinstall --no-deps "$checkout"
"$venv/bin/pip" install -q --disable-pip-version-check "$checkout"  # its dependencies, where missing
cd "$work"
export LENS_BENCH_CACHE="$work/cache"
say "bench list, from $work"
"$venv/bin/bench" list > list.txt
for name in knowledge_ablation monosemanticity interpretability sparse_probing polysemanticity privacy_erasure \
    feature_edit_tau mlp_neurons sae_post_mlp sae_mlp_out sae_attn_out neuron_clusters random pca ica lexical; do
    grep -qw "$name" list.txt || { cat list.txt; say "FAILED: $name is missing from bench list"; exit 1; }
done
grep -q "site-packages" list.txt || { say "FAILED: the task files do not come from the installed package"; exit 1; }
say "a tiny model that knows the miniature ParaRel"
"$venv/bin/python" "$checkout/tests/tiny.py" "$work/fixtures"
say "bench run on it"
"$venv/bin/bench" run --model "$work/fixtures/model" --units mlp_neurons --task knowledge_ablation --layers 2 \
    --limit 3 --data-dir "$work/fixtures/data" --batch-size 8
ls bench-results/knowledge_ablation/*/mlp_neurons/*.json > /dev/null
say "OK: the installed package runs from $work"
