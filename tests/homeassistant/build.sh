#!/usr/bin/env bash
# Build the venv that runs a real Home Assistant core for tests/test_home_assistant.py (make ha-test).
#
# Home Assistant 2025.4.4 needs Python >= 3.13; this machine (Debian 12) has 3.11. The only registries
# reachable are PyPI, Debian's archive and npm, so Python 3.13 comes from Debian 13 (Trixie) itself:
#   - apt, with private state and lists under $CACHE (the host's sources with the suite swapped to
#     trixie, as tests/arm64/smoke.sh does), downloads Trixie's python3.13 with its whole dependency
#     closure (glibc 2.41 included) and python3.13-dev (headers: four of HA's requirements are sdists);
#     dpkg-deb -x unpacks them into $CACHE/sysroot, nothing is installed system-wide;
#   - Trixie's python3.13 needs glibc 2.38 (Bookworm has 2.36), so patchelf (Trixie's, run through
#     Trixie's loader) points the binary at the sysroot's loader and libraries. Extension modules of
#     PyPI wheels then load into that glibc too, and the venv's python symlink runs as is;
#   - pip (a wheel from PyPI, fetched by the main venv's pip) is bootstrapped into a --without-pip venv
#     (Debian's ensurepip looks for its wheels under /usr/share, outside the sysroot);
#   - then tests/homeassistant/requirements.txt under Home Assistant's own package_constraints.txt.
# Any failure stops with "ha-test: error: ..." and exit 1: CI must fail, never pass without the test.
#
# usage: tests/homeassistant/build.sh VENV [CACHE]   (HOST_PYTHON: a Python with pip, default .venv's)
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
HERE=$REPO/tests/homeassistant
VENV=${1:?usage: build.sh VENV [CACHE]}
CACHE=${2:-$REPO/cache/homeassistant}
HOST_PYTHON=${HOST_PYTHON:-$REPO/.venv/bin/python}
SUITE=trixie  # Debian 13: Python 3.13
PY=3.13

say() { printf 'ha-test: %s\n' "$*" >&2; }
die() {
    printf 'ha-test: error: %s\n' "$*" >&2
    printf 'ha-test: error: the Home Assistant test cannot run, so it fails (see above)\n' >&2
    exit 1
}

[[ $(uname -m) == x86_64 ]] || die "the sysroot is Debian's amd64 python$PY; this machine is $(uname -m)"
for tool in apt-get dpkg-deb cc c++; do
    command -v "$tool" >/dev/null || die "$tool not found: needed to fetch Python $PY and build HA's sdists"
done
[[ -x $HOST_PYTHON ]] || die "$HOST_PYTHON not found (make ha-test builds .venv first)"
case $VENV in /*) ;; *) VENV=$REPO/$VENV ;; esac
mkdir -p "$CACHE"
CACHE=$(cd "$CACHE" && pwd)

# shellcheck source=/dev/null
HOST_SUITE=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
APT_DIR=$CACHE/apt-$SUITE
APT_OPTS=(-o "Dir::State=$APT_DIR/state" -o "Dir::State::status=$APT_DIR/status" -o "Dir::Cache=$APT_DIR/cache"
          -o "Dir::Etc::SourceList=$APT_DIR/sources.list" -o "Dir::Etc::SourceParts=$APT_DIR/sources.list.d"
          -o "Dir::Etc::Preferences=$APT_DIR/preferences" -o "Dir::Etc::PreferencesParts=$APT_DIR/preferences.d"
          -o "APT::Architecture=amd64" -o "APT::Architectures::=amd64" -o Debug::NoLocking=1
          -o APT::Sandbox::User=root -o Acquire::Retries=2 -qq)

private_apt() {
    [[ -f $APT_DIR/updated ]] && return 0
    [[ -n $HOST_SUITE ]] || die "cannot tell this Debian's suite from /etc/os-release"
    rm -rf "$APT_DIR"
    mkdir -p "$APT_DIR/state/lists/partial" "$APT_DIR/cache/archives/partial" "$APT_DIR/sources.list.d" \
        "$APT_DIR/preferences.d"
    : >"$APT_DIR/status"
    local file target found=0
    for file in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
        [[ -f $file ]] || continue
        grep -Eq '(^|[[:space:]])(Suites:|deb )' "$file" || continue
        grep -q "$HOST_SUITE" "$file" || continue
        target=$APT_DIR/sources.list.d/$(basename "$file")
        [[ $file == /etc/apt/sources.list ]] && target=$APT_DIR/sources.list
        sed -E "s/\\b$HOST_SUITE\\b/$SUITE/g" "$file" >"$target"
        found=1
    done
    [[ $found == 1 ]] || die "no Debian source for $HOST_SUITE in /etc/apt to swap to $SUITE"
    if ! apt-get "${APT_OPTS[@]}" update >"$APT_DIR/update.log" 2>&1 \
            || grep -Eq '^(E:|W: Failed to fetch|W: Some index files failed)' "$APT_DIR/update.log"; then
        cat "$APT_DIR/update.log" >&2
        die "apt cannot reach Debian's $SUITE archive for Python $PY (log above)"
    fi
    touch "$APT_DIR/updated"
}

build_sysroot() {
    ROOT=$CACHE/sysroot
    LIB=$ROOT/usr/lib/x86_64-linux-gnu
    LOADER=$LIB/ld-linux-x86-64.so.2
    [[ -f $ROOT/.ok ]] && return 0
    private_apt
    say "fetching Debian $SUITE's python$PY (and its glibc) into $ROOT"
    # An empty dpkg status: apt downloads the whole closure, glibc and libstdc++ included.
    local packages=("python$PY" "python$PY-dev" patchelf)
    if ! apt-get "${APT_OPTS[@]}" install --download-only -y "${packages[@]}" >"$APT_DIR/install.log" 2>&1; then
        # Cached lists go stale when Debian publishes a point release: fetch them again, once.
        rm -f "$APT_DIR/updated" && private_apt
        apt-get "${APT_OPTS[@]}" install --download-only -y "${packages[@]}" >"$APT_DIR/install.log" 2>&1 \
            || { cat "$APT_DIR/install.log" >&2; die "apt cannot download ${packages[*]} from $SUITE"; }
    fi
    rm -rf "$ROOT" && mkdir -p "$ROOT"
    local deb
    for deb in "$APT_DIR/cache/archives/"*.deb; do
        dpkg-deb -x "$deb" "$ROOT"
    done
    [[ -x $LOADER && -x $ROOT/usr/bin/python$PY ]] || die "the $SUITE packages hold no python$PY or loader"
    # patchelf 0.18 writes a binary that segfaults when both are changed at the default page size
    # (seen here); a 64 KiB page size lays the new headers out so it runs.
    "$LOADER" --library-path "$LIB" "$ROOT/usr/bin/patchelf" --page-size 65536 --set-interpreter "$LOADER" \
        --force-rpath --set-rpath "$LIB" "$ROOT/usr/bin/python$PY" || die "patchelf failed on python$PY"
    "$ROOT/usr/bin/python$PY" -c 'import ssl, sqlite3, ctypes, lzma, bz2, zlib, venv' \
        || die "the patched python$PY does not run"
    touch "$ROOT/.ok"
}

build_venv() {
    local wheels=$CACHE/wheels
    mkdir -p "$wheels"
    rm -rf "$VENV"
    say "creating $VENV with $("$ROOT/usr/bin/python$PY" -V)"
    "$ROOT/usr/bin/python$PY" -m venv --without-pip "$VENV" || die "python$PY -m venv failed"
    rm -rf "$wheels/pip" && mkdir -p "$wheels/pip"
    "$HOST_PYTHON" -m pip download -q --no-deps -d "$wheels/pip" pip || die "pip cannot download pip from PyPI"
    local pip_wheel
    pip_wheel=$(echo "$wheels"/pip/pip-*.whl)
    "$VENV/bin/python" "$pip_wheel/pip" install -q --no-index "$pip_wheel" || die "cannot install pip"
    # Home Assistant's own constraints for its release: the versions its CI tested together.
    local ha
    ha=$(grep -Eo '^homeassistant==[0-9.]+' "$HERE/requirements.txt") || die "no homeassistant pin in requirements"
    "$VENV/bin/pip" download -q --no-deps -d "$wheels" "$ha" || die "pip cannot download $ha from PyPI"
    local wheel
    wheel=$(ls "$wheels/${ha/==/-}-"*.whl) || die "no wheel for $ha"
    "$VENV/bin/python" -c 'import sys, zipfile
sys.stdout.write(zipfile.ZipFile(sys.argv[1]).read("homeassistant/package_constraints.txt").decode())' \
        "$wheel" >"$VENV/package_constraints.txt" || die "$wheel has no package_constraints.txt"
    say "installing $ha and the requirements of the integrations it loads (a few minutes the first time)"
    # The sdists' C extensions (built where the index has no cp313 wheel) need Trixie's Python headers,
    # whose pyconfig.h includes <x86_64-linux-gnu/python3.13/...>. -idirafter, not -I: the sysroot fills
    # in only what the host lacks, so the host compiler keeps its own libc headers (Trixie's stdint.h
    # wants bits/ headers from a newer glibc than the host compiler's search path holds).
    CPPFLAGS="-idirafter $ROOT/usr/include" "$VENV/bin/pip" install -q --disable-pip-version-check \
        -r "$HERE/requirements.txt" -c "$VENV/package_constraints.txt" \
        || die "pip cannot install $HERE/requirements.txt (output above)"
    "$VENV/bin/hass" --version >/dev/null || die "$VENV/bin/hass does not run"
}

build_sysroot
build_venv
say "ready: $("$VENV/bin/hass" --version) on $("$VENV/bin/python" -V)"
