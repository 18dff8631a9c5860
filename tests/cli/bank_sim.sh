#!/usr/bin/env bash
# bank_sim.sh: the ahead-of-time reordering must make the kernel's shared-memory scatter nearly conflict-free:
# simulated average worst-bank load per warp store < 1.7 with it and > 2.5 without, at 70/80/90% sparsity.
set -euo pipefail
"$FPK_TOOLS/bank_sim" --check 512 512
