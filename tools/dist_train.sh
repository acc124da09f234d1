#!/usr/bin/env bash
# Distributed training on torchrun (MMEngine DDP).
# Usage: bash tools/dist_train.sh CONFIG NPROC [train.py args...]
# Multi-node: set NNODES, NODE_RANK, MASTER_ADDR and PORT on every node.
set -euo pipefail
CONFIG=$1
NPROC=$2
exec bash "$(dirname "$0")/dist_launch.sh" train.py "$NPROC" "$CONFIG" \
    --launcher pytorch "${@:3}"
