#!/usr/bin/env bash
# Run `maskipy-edge run` in an emulated 64-bit Raspberry Pi OS userland (arm64 Debian Bookworm or
# Trixie) on a folder of images, with nothing installed system-wide and no binfmt_misc:
#   - qemu-aarch64 comes out of Debian's qemu-user .deb (Trixie's qemu 10: qemu 7.2 passes the host's
#     x86 /proc/cpuinfo through and LiteRT's CPU probe crashes on it; qemu >= 8.1 emulates an arm64 one);
#   - the sysroot is Debian's own arm64 python3, python3-numpy and C++ runtime, fetched by apt with
#     private state and lists (the host's sources, the suite swapped) and unpacked with dpkg-deb -x;
#   - ai-edge-litert, OpenCV and gpiozero are PyPI's aarch64 wheels, installed by the host's pip with
#     --platform/--target next to apt's numpy (as install.sh does on a Pi); maskipy is a wheel built here.
# Downloads are cached under $MASKIPY_ARM64_CACHE (default cache/arm64, git-ignored).
#
# usage: tests/arm64/smoke.sh SUITE STATE_DIR [SOURCE [CPU]]
#   SUITE      bookworm (Python 3.11) or trixie (Python 3.13)
#   STATE_DIR  where `maskipy-edge run` writes events.jsonl and totals.json
#   SOURCE     images or video (default ../shared/data/scenes); CPU a qemu model (default cortex-a72)
# Exits 0 after the run; 3 with "skip: ..." when apt cannot reach the Debian archive; 1 on failure.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
SUITE=${1:?usage: smoke.sh SUITE STATE_DIR [SOURCE [CPU]]}
STATE=${2:?usage: smoke.sh SUITE STATE_DIR [SOURCE [CPU]]}
SOURCE=${3:-$REPO/../shared/data/scenes}
CPU=${4:-cortex-a72}
CACHE=${MASKIPY_ARM64_CACHE:-$REPO/cache/arm64}
HOST_PYTHON=${HOST_PYTHON:-$REPO/.venv/bin/python}
QEMU_SUITE=trixie

case $SUITE in
    # glibc of the suite: the newest manylinux tag its wheels may carry.
    bookworm) PY=3.11; GLIBC_MINOR=36; OPENCV='opencv-python-headless<4.12' ;;  # apt numpy 1.24
    trixie) PY=3.13; GLIBC_MINOR=41; OPENCV='opencv-python-headless<5' ;;       # apt numpy 2.2
    *) echo "smoke.sh: error: suite '$SUITE' is not bookworm or trixie" >&2; exit 1 ;;
esac

say() { printf 'arm64 smoke (%s): %s\n' "$SUITE" "$*" >&2; }
skip() { printf 'skip: %s\n' "$*"; exit 3; }

# shellcheck source=/dev/null
host_codename() { (. /etc/os-release && echo "${VERSION_CODENAME:-}"); }

# apt-get with its own state, lists and cache under $CACHE: the host's sources with the suite
# swapped, another architecture, no root-owned state touched and nothing installed.
private_apt() {
    local arch=$1 suite=$2
    local dir=$CACHE/apt-$suite-$arch host
    host=$(host_codename)
    APT_OPTS=(-o "Dir::State=$dir/state" -o "Dir::State::status=$dir/status" -o "Dir::Cache=$dir/cache"
              -o "Dir::Etc::SourceList=$dir/sources.list" -o "Dir::Etc::SourceParts=$dir/sources.list.d"
              -o "Dir::Etc::Preferences=$dir/preferences" -o "Dir::Etc::PreferencesParts=$dir/preferences.d"
              -o "APT::Architecture=$arch" -o "APT::Architectures::=$arch" -o Debug::NoLocking=1
              -o APT::Sandbox::User=root -o Acquire::Retries=2 -qq)
    [[ -f $dir/updated ]] && return 0
    mkdir -p "$dir/state/lists/partial" "$dir/cache/archives/partial" "$dir/sources.list.d" "$dir/preferences.d"
    : >"$dir/status"
    local file
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f $file ]] || continue
        # Debian's own archive only: a third-party repository has no arm64 Python for us.
        grep -Eq '(^|[[:space:]])(Suites:|deb )' "$file" || continue
        grep -q "$host" "$file" || continue
        local target
        target=$dir/sources.list.d/$(basename "$file")
        [[ $file == /etc/apt/sources.list ]] && target=$dir/sources.list
        sed -E "s/\\b$host\\b/$suite/g" "$file" >"$target"
    done
    if ! apt-get "${APT_OPTS[@]}" update >"$dir/update.log" 2>&1 \
            || grep -Eq '^(E:|W: Failed to fetch|W: Some index files failed)' "$dir/update.log"; then
        cat "$dir/update.log" >&2
        rm -rf "$dir"
        skip "apt cannot reach the Debian archive for $suite/$arch (see the log above)"
    fi
    touch "$dir/updated"
}

fetch_qemu() {
    QEMU=$CACHE/qemu-aarch64
    [[ -x $QEMU ]] && return 0
    private_apt amd64 "$QEMU_SUITE"
    local work=$CACHE/qemu-work
    rm -rf "$work" && mkdir -p "$work"
    (cd "$work" && apt-get "${APT_OPTS[@]}" download qemu-user) || skip "apt cannot download qemu-user"
    dpkg-deb -x "$(ls "$work"/qemu-user_*.deb)" "$work/x"
    # One static binary out of the package's 450 MB of emulators.
    mv "$work/x/usr/bin/qemu-aarch64" "$QEMU" && rm -rf "$work"
}

build_sysroot() {
    ROOT=$CACHE/sysroot-$SUITE
    [[ -f $ROOT/.ok ]] && return 0
    private_apt arm64 "$SUITE"
    say "fetching arm64 python3 $PY and numpy"
    apt-get "${APT_OPTS[@]}" install --download-only -y python3 python3-numpy libstdc++6 libgomp1 \
        >/dev/null || skip "apt cannot download the arm64 packages for $SUITE"
    rm -rf "$ROOT" && mkdir -p "$ROOT"
    local deb
    for deb in "$CACHE/apt-$SUITE-arm64/cache/archives/"*.deb; do
        dpkg-deb -x "$deb" "$ROOT"
    done
    # Trixie's packages are merged-/usr: the loader's path /lib/ld-linux-aarch64.so.1 needs the link.
    local dir
    for dir in bin lib sbin; do
        [[ -e $ROOT/$dir ]] || ln -s "usr/$dir" "$ROOT/$dir"
    done
    # What the alternatives system would do in libblas3/liblapack3's postinst.
    local lib=$ROOT/usr/lib/aarch64-linux-gnu
    ln -sf blas/libblas.so.3 "$lib/libblas.so.3"
    ln -sf lapack/liblapack.so.3 "$lib/liblapack.so.3"
    touch "$ROOT/.ok"
}

# PyPI's aarch64 wheels for the suite's Python, beside apt's numpy (never pip's).
install_wheels() {
    local wheels=$CACHE/wheels-$SUITE platforms=(--platform manylinux2014_aarch64) minor
    for minor in $(seq 17 "$GLIBC_MINOR"); do platforms+=(--platform "manylinux_2_${minor}_aarch64"); done
    local target=(--python-version "$PY" --implementation cp --abi "cp${PY/./}" --only-binary=:all:)
    if [[ ! -f $wheels/.ok ]]; then
        say "downloading aarch64 wheels"
        "$HOST_PYTHON" -m pip download -q -d "$wheels" "${platforms[@]}" "${target[@]}" \
            ai-edge-litert "$OPENCV" 'gpiozero>=2.0' || skip "pip cannot download the aarch64 wheels"
        touch "$wheels/.ok"
    fi
    local build=$CACHE/build-$SUITE
    rm -rf "$build" && mkdir -p "$build/dist"
    # Built on the host: without binfmt_misc pip could not run the emulated Python for a build.
    # Without build isolation when the venv can (fast, offline); else pip fetches setuptools and wheel.
    "$HOST_PYTHON" -m pip wheel -q --no-deps --no-build-isolation -w "$build/dist" "$REPO" >/dev/null 2>&1 \
        || "$HOST_PYTHON" -m pip wheel -q --no-deps -w "$build/dist" "$REPO" >/dev/null
    SITE=$build/site
    local chosen=() wheel
    for wheel in "$wheels"/*.whl; do
        [[ $(basename "$wheel") == numpy-* ]] || chosen+=("$wheel")
    done
    "$HOST_PYTHON" -m pip install -q --no-index --no-deps --target "$SITE" "${platforms[@]}" "${target[@]}" \
        "${chosen[@]}" "$build/dist/"*.whl
}

main() {
    [[ -d $SOURCE ]] || [[ -f $SOURCE ]] || { echo "smoke.sh: error: $SOURCE not found" >&2; exit 1; }
    if ! command -v apt-get >/dev/null || ! command -v dpkg-deb >/dev/null; then
        skip "needs apt-get and dpkg-deb (Debian)"
    fi
    [[ $(uname -m) == x86_64 ]] || skip "the emulator fetched is qemu-user for amd64 hosts"
    mkdir -p "$CACHE"
    fetch_qemu
    build_sysroot
    install_wheels
    say "running maskipy-edge run on $SOURCE ($CPU, Python $PY)"
    mkdir -p "$STATE"
    # -L: the emulator resolves absolute paths (the loader, /usr/lib) inside the sysroot first.
    env -i PATH=/usr/bin:/bin HOME="$STATE" PYTHONPATH="$SITE" PYTHONDONTWRITEBYTECODE=1 \
        "$QEMU" -cpu "$CPU" -L "$CACHE/sysroot-$SUITE" "$CACHE/sysroot-$SUITE/usr/bin/python$PY" \
        -c 'import platform, sys; import numpy, cv2, ai_edge_litert
print("arm64:", platform.machine(), "python", platform.python_version(), "numpy", numpy.__version__,
      "opencv", cv2.__version__, "ai-edge-litert", ai_edge_litert.__version__, file=sys.stderr)
from maskipy.edge.cli import main; sys.exit(main())' \
        run --source "$SOURCE" --state-dir "$STATE"
}

main
