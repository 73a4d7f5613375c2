#!/usr/bin/env bash
# Build the reference venv (bench/.venv-ref) holding the tools we benchmark against:
#   mergekit 0.1.5 (CLI mergekit-yaml) and lm-cocktail 0.0.4 (import LM_Cocktail).
# Idempotent: a venv that already imports everything is left as it is.
#
# torch==2.13.0 goes in FIRST: it is a CPU wheel on local disk (/opt/wheels). A looser spec
# (what mergekit's "torch>=2.0.0" would pull by itself) could download multi-GB CUDA builds.
# mergekit 0.1.5 requires transformers>=5,<6, which is also what lm-cocktail 0.0.4 gets
# (it asks only transformers>=4.18), so no --no-deps juggling is needed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv-ref"
PY="${PYTHON:-python3.11}"

check() {
    "$VENV/bin/python" - <<'EOF'
import importlib.metadata as md
import torch, transformers, mergekit, LM_Cocktail, sentence_transformers  # noqa: F401
assert torch.__version__.startswith("2.13.0"), torch.__version__
assert md.version("mergekit") == "0.1.5", md.version("mergekit")
assert md.version("LM_Cocktail") == "0.0.4", md.version("LM_Cocktail")
print("reference venv OK:",
      "torch", torch.__version__,
      "transformers", transformers.__version__,
      "mergekit", md.version("mergekit"),
      "lm-cocktail", md.version("LM_Cocktail"),
      "sentence-transformers", sentence_transformers.__version__)
EOF
}

if [ -x "$VENV/bin/python" ] && [ -x "$VENV/bin/mergekit-yaml" ] && check 2>/dev/null; then
    exit 0
fi

if [ ! -x "$VENV/bin/python" ]; then
    "$PY" -m venv "$VENV"
fi
PIP=("$VENV/bin/python" -m pip install --disable-pip-version-check)

# 1. torch first, pinned to the local CPU wheel.
"${PIP[@]}" "torch==2.13.0"
# 2. the reference tools; torch stays pinned so the resolver cannot swap it.
"${PIP[@]}" "torch==2.13.0" "mergekit==0.1.5" "lm-cocktail==0.0.4" sentence-transformers psutil

check
