#!/usr/bin/env bash
# Installs what modernbert.cpp needs from Debian 12 packages, skipping what is already there.
#   scripts/install_deps.sh            build + runtime dependencies (and the main job's tools)
#   scripts/install_deps.sh --test     also the test references (PyTorch; GoogleTest)
set -euo pipefail
pkgs=(build-essential cmake pkg-config git nlohmann-json3-dev libicu-dev libopenblas-dev libdnnl-dev libcpp-httplib-dev
      libopenmpi-dev openmpi-bin python3 python3-matplotlib python3-dev pybind11-dev python3-numpy)
if [[ "${1:-}" == "--test" ]]; then
  # dpkg-dev: dpkg-shlibdeps for the .deb test (package.install); build-essential pulls it in too.
  pkgs+=(libgtest-dev python3-numpy python3-torch curl dpkg-dev)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js and npm (demo data, HF tokenizers reference): any install that provides the commands will
# do (a Node.js from elsewhere bundles its own npm and conflicts with Debian's npm package).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
if ((${#missing[@]})); then
  echo "installing: ${missing[*]}"
  SUDO=""
  [[ $(id -u) -ne 0 ]] && SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
