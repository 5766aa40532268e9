#!/usr/bin/env bash
# Prepares, on this machine, what a GPU check on a lent `device` machine needs and cannot fetch there (it has
# CUDA, CMake and a compiler, but no network and no Debian -dev packages): the build dependencies as .deb
# files, the shared libraries they link (used there only where the image lacks them), and the golden sets
# that fit the transfer limit. Everything goes to .device/, which git ignores (.git/info/exclude); the run
# then names it in `carry`:
#   run(command="bash scripts/gpu-check.sh test", carry=[".device"], timeout_s=600)   then  ... bench
set -euo pipefail
cd "$(dirname "$0")/.."
exclude=.git/info/exclude
mkdir -p "$(dirname "$exclude")"
grep -qx '/.device/' "$exclude" 2>/dev/null || echo '/.device/' >>"$exclude"

build_pkgs="libeigen3-dev libhdf5-dev libhdf5-103-1 libhdf5-hl-100 libhdf5-cpp-103-1 libhdf5-hl-cpp-100 libsz2 libaec0
  libaec-dev libboost-program-options1.74-dev libboost-program-options1.74.0 libboost1.74-dev libgtest-dev zlib1g-dev
  libdnnl-dev libdnnl2"
# What libhdf5 and the OpenMP runtime link, beyond glibc (ldd of libhdf5.so on Debian 12).
runtime_pkgs="libcurl4 libnghttp2-14 libidn2-0 librtmp1 libssh2-1 libpsl5 libssl3 libgssapi-krb5-2 libldap-2.5-0
  libzstd1 libbrotli1 libunistring2 libgnutls30 libhogweed6 libnettle8 libgmp10 libkrb5-3 libk5crypto3 libcom-err2
  libkrb5support0 libsasl2-2 libp11-kit0 libtasn1-6 libkeyutils1 libffi8 libgomp1"

rm -rf .device
mkdir -p .device/debs .device/runtime .device/golden
# apt-get download writes into the current folder; as root it warns that _apt cannot write there (harmless).
(cd .device/debs && apt-get download -q $build_pkgs 2>&1 | grep -v "unsandboxed" || true)
(cd .device/runtime && apt-get download -q $runtime_pkgs 2>&1 | grep -v "unsandboxed" || true)
[ "$(ls .device/debs | wc -l)" -ge 14 ] || { echo "device-prepare: apt-get download failed" >&2; exit 1; }

# Golden sets: the bundled small and multimer_small sets, and seed1 (real AF2 widths) from ../shared when present. The
# module cases stay behind (the GPU golden test compares full-model outputs), and templates_seed5 does not
# fit beside seed1 in the 64 MiB a run carries.
copy_set() {
  mkdir -p ".device/golden/$2"
  cp "$1"/config.json "$1"/features.h5 "$1"/outputs.h5 "$1"/params.npz ".device/golden/$2/"
}
copy_set tests/data/golden/small small
copy_set tests/data/golden/multimer_small multimer_small  # 1.6 MB: AlphaFold-Multimer on the device
[ -d ../shared/golden/seed1 ] && copy_set ../shared/golden/seed1 seed1
du -sh .device
