#!/usr/bin/env bash
# Installs the Debian 12 packages axfold builds against, when they are missing. Safe to run repeatedly;
# needs root (or sudo) only when something is missing. The CUDA toolkit is optional and not installed
# here: when /usr/local/cuda/bin/nvcc exists the build picks it up.
set -euo pipefail

packages=(build-essential cmake pkg-config libeigen3-dev libhdf5-dev hdf5-tools libboost-program-options-dev
          libopenmpi-dev openmpi-bin zlib1g-dev libgtest-dev libopenblas-openmp-dev libdnnl-dev
          python3-numpy python3-h5py python3-dev pybind11-dev
          clang libclang-rt-dev libomp-dev)  # the sanitizer and libFuzzer build (scripts/sanitize.sh, fuzz.sh)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "setup: all packages present"
  exit 0
fi
echo "setup: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
