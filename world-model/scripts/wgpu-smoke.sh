#!/usr/bin/env bash
# Smoke test of plasma-world-model's wgpu path on Mesa's software Vulkan driver (lavapipe):
# no GPU needed. Installs Debian's mesa-vulkan-drivers if lavapipe is missing (needs root
# or sudo), points the Vulkan loader at it, and runs the feature-gated, ignored test that
# trains, rolls out and plans on a wgpu device and compares with the CPU.
#
#   bash world-model/scripts/wgpu-smoke.sh
#
# On a machine with a real GPU, set PLASMA_KEEP_VULKAN=1 to use its driver instead.
set -euo pipefail
cd "$(dirname "$0")/../.."

icd() { ls /usr/share/vulkan/icd.d/lvp_icd*.json 2>/dev/null | head -n 1; }

if [[ "${PLASMA_KEEP_VULKAN:-0}" != 1 ]]; then
  if [[ -z "$(icd)" ]]; then
    sudo=""
    if [[ "$(id -u)" -ne 0 ]]; then sudo="sudo"; fi
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq mesa-vulkan-drivers
  fi
  VK_ICD_FILENAMES="$(icd)"
  if [[ -z "$VK_ICD_FILENAMES" ]]; then
    echo "lavapipe ICD not found after installing mesa-vulkan-drivers" >&2
    exit 1
  fi
  export VK_ICD_FILENAMES
  # Mesa probes for a display server; give it a runtime dir so it stays quiet.
  export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
  # lavapipe is a CPU-type adapter: ask cubecl's wgpu runtime for it explicitly.
  export CUBECL_WGPU_DEFAULT_DEVICE="${CUBECL_WGPU_DEFAULT_DEVICE:-Cpu}"
  echo "using Vulkan ICD $VK_ICD_FILENAMES"
fi

cargo test --release -p plasma-world-model --features wgpu --test wgpu -- --ignored --nocapture
