#!/usr/bin/env bash
# Build the wheel, install it alone into a fresh venv, and train, evaluate, fine-tune and package from a
# folder outside the checkout: what `pip install sb3-il` users get. Usage: wheel_check.sh PYTHON TORCH_SPEC
set -euo pipefail
python=$1; torch=$2
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$python" -m pip wheel --no-deps -q -w "$work/dist" "$root" 2>/dev/null
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --upgrade pip 2>/dev/null
"$work/venv/bin/pip" install -q "$torch" 2>/dev/null
"$work/venv/bin/pip" install -q "$work"/dist/sb3_il-*.whl 2>/dev/null
cd "$work" && mkdir elsewhere && cd elsewhere
sb3il="$work/venv/bin/sb3-il"
"$sb3il" train --algo bc --env CartPole-v1 --grad-steps 200 --final-eval-episodes 5 --quiet > /dev/null
"$sb3il" evaluate runs/bc-CartPole-v1-s0 --episodes 3
"$sb3il" finetune --run runs/bc-CartPole-v1-s0 --timesteps 512 --eval-every 512 --eval-episodes 2 \
  --vf-warmup-rollouts 1 --out ft --quiet
"$sb3il" push --run ft --repo-id me/ppo-CartPole-v1 --dry-run package --video-steps 0
"$work/venv/bin/python" -m sb3_il --help > /dev/null
echo "wheel check: 1 passed, 0 failed"
