#!/usr/bin/env bash
# Install maskipy-edge as a systemd service on Raspberry Pi OS (Bookworm or Trixie). Safe to re-run.
set -euo pipefail

PREFIX=/opt/maskipy
CONF_DIR=${MASKIPY_CONF_DIR:-/etc/maskipy}  # the variable only for tests
STATE_DIR=/var/lib/maskipy
SERVICE=maskipy-edge.service
UNIT_DST=/etc/systemd/system/$SERVICE
WRAPPER=/usr/local/bin/maskipy-edge
SUDOERS=/etc/sudoers.d/maskipy-deploy
SERVICE_USER=maskipy
# picamera2 and lgpio come from apt: they wrap libcamera and the kernel GPIO driver.
APT_PACKAGES=(python3-venv python3-pip python3-numpy python3-picamera2 python3-lgpio sudo)
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DRY_RUN=0
ACTION=install
USE_APT=1
DEPLOY_USER=${SUDO_USER:-}
CHANGED=0

usage() {
    cat <<EOF
usage: sudo systemd/install.sh [--dry-run] [--uninstall] [--repo DIR] [--deploy-user USER] [--no-apt]

Installs maskipy into a venv at $PREFIX (with system site packages, for picamera2), creates the
'$SERVICE_USER' system user, $CONF_DIR and $STATE_DIR, and enables $SERVICE.
  --dry-run          print what would change; change nothing (no root needed)
  --uninstall        remove the service, venv and helpers; keep config, counts, models and logs
  --repo DIR         maskipy source to install (default: this checkout, $REPO)
  --deploy-user USER may upload bundles with maskipy-deploy (default: the sudo user, ${DEPLOY_USER:-none})
  --no-apt           skip apt (packages already installed by hand)
EOF
}

say() { printf 'install.sh: %s\n' "$*"; }
die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }

# Every change goes through here, so --dry-run shows exactly the commands a real run would make.
run() {
    CHANGED=1
    if [[ $DRY_RUN == 1 ]]; then
        printf 'would run:'; printf ' %q' "$@"; printf '\n'
    else
        "$@"
    fi
}

# Write stdin to a file only when its content differs (keeps re-runs change-free).
put_file() {
    local dst=$1 mode=$2 tmp
    tmp=$(mktemp)
    cat >"$tmp"
    if [[ -f $dst ]] && cmp -s "$tmp" "$dst"; then
        rm -f "$tmp"
        return 1
    fi
    if [[ $DRY_RUN == 1 ]]; then
        CHANGED=1; printf 'would write: %s\n' "$dst"; rm -f "$tmp"
    else
        run install -m "$mode" "$tmp" "$dst"; rm -f "$tmp"
    fi
}

ensure_dir() {
    local path=$1 owner=$2 mode=$3
    if [[ -d $path && $(stat -c '%U:%G:%a' "$path") == "$owner:${mode#0}" ]]; then
        return 0
    fi
    run install -d -o "${owner%%:*}" -g "${owner##*:}" -m "$mode" "$path"
}

# ai-edge-litert, OpenCV and numpy have no 32-bit ARM wheels: pip would fail deep in a build instead.
check_architecture() {
    local arch
    arch=$(dpkg --print-architecture 2>/dev/null || uname -m)
    case $arch in
        arm64|aarch64|amd64|x86_64) ;;  # x86-64: tests and development machines
        *) die "maskipy needs 64-bit Raspberry Pi OS (Pi 3, Zero 2 W, 4, 5); this system is $arch" ;;
    esac
}

check_system() {
    check_architecture
    local codename=unknown
    if [[ -r /etc/os-release ]]; then
        # shellcheck source=/dev/null
        codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-unknown}")
    fi
    case $codename in
        bookworm|trixie) ;;
        *) say "warning: tested on Raspberry Pi OS Bookworm and Trixie, this is '$codename'" ;;
    esac
    if [[ $DRY_RUN == 0 && $EUID != 0 ]]; then
        die "run as root (sudo $0), or add --dry-run to see what it would do"
    fi
    command -v systemctl >/dev/null || die "systemctl not found; maskipy-edge needs systemd"
    [[ -f $REPO/setup.cfg ]] || die "$REPO: not a maskipy checkout (no setup.cfg); pass --repo DIR"
}

install_apt() {
    local missing=() pkg
    for pkg in "${APT_PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
    done
    if [[ ${#missing[@]} == 0 ]]; then
        say "apt packages present"
        return
    fi
    run apt-get update
    # Without --no-install-recommends picamera2 pulls Qt and a desktop onto Pi OS Lite.
    run env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

install_user() {
    getent passwd "$SERVICE_USER" >/dev/null || run useradd --system --user-group \
        --home-dir "$STATE_DIR" --no-create-home --shell /usr/sbin/nologin "$SERVICE_USER"
    # SupplementaryGroups= fails the start (status 216/GROUP) when a group does not exist.
    local group
    for group in video gpio; do
        getent group "$group" >/dev/null || run groupadd --system "$group"
        # In the groups for good, not only through the unit: 'sudo -u maskipy maskipy-edge check' works too.
        id -nG "$SERVICE_USER" 2>/dev/null | tr ' ' '\n' | grep -qx "$group" \
            || run usermod -aG "$group" "$SERVICE_USER"
    done
    if [[ -n $DEPLOY_USER && $DEPLOY_USER != root ]]; then
        id -nG "$DEPLOY_USER" 2>/dev/null | tr ' ' '\n' | grep -qx "$SERVICE_USER" \
            || run usermod -aG "$SERVICE_USER" "$DEPLOY_USER"
    fi
}

system_numpy_version() {
    /usr/bin/python3 -c 'import numpy; print(numpy.__version__)' 2>/dev/null || true
}

# pip would otherwise pull numpy 2 over apt's numpy and break picamera2's compiled helpers.
numpy_constraint() {
    local version
    version=$(system_numpy_version)
    [[ -n $version ]] || return 0
    printf 'numpy==%s\n' "$version"
    # OpenCV >= 4.12 needs numpy 2: without the cap pip fetches 143 MB of those wheels before 4.11.
    if [[ ${version%%.*} -lt 2 ]]; then
        printf 'opencv-python-headless<4.12\n'
    fi
    return 0
}

source_stamp() {
    (cd "$REPO" && find . \( -name .git -o -name .venv -o -name build -o -name runs -o -name state \
        -o -name cache -o -name '*.egg-info' -o -name tests \) -prune -o -type f \
        \( -name '*.py' -o -name '*.cfg' -o -name '*.toml' -o -name '*.ini' -o -name '*.json' \
        -o -name '*.tflite' -o -name '*.xml' \) -print0 | sort -z | xargs -0 sha256sum | sha256sum)
}

install_venv() {
    [[ -x $PREFIX/bin/python ]] || run /usr/bin/python3 -m venv --system-site-packages "$PREFIX"
    local stamp
    stamp=$(source_stamp)
    if [[ -f $PREFIX/.maskipy-source && $(cat "$PREFIX/.maskipy-source") == "$stamp" ]]; then
        say "maskipy in $PREFIX is up to date"
        return
    fi
    numpy_constraint | put_file "$PREFIX/constraints.txt" 0644 || true
    run "$PREFIX/bin/pip" install --quiet --upgrade-strategy only-if-needed \
        --constraint "$PREFIX/constraints.txt" "${REPO}[edge]"
    printf '%s\n' "$stamp" | put_file "$PREFIX/.maskipy-source" 0644 || true
}

install_dirs() {
    local config=$CONF_DIR/config.ini
    ensure_dir "$CONF_DIR" root:root 0755
    # 0640 root:maskipy: the service reads it, other local users cannot read its MQTT or page password.
    if [[ ! -f $config ]]; then
        # The Pi config (camera, LEDs, buzzer, /var/lib/maskipy), not the all-defaults example.
        if [[ -f $REPO/config.ini ]]; then
            run install -m 0640 -o root -g "$SERVICE_USER" "$REPO/config.ini" "$config"
        else
            printf '[counts]\nstate_dir = %s\n' "$STATE_DIR" | put_file "$config" 0640 || true
            run chown "root:$SERVICE_USER" "$config"
        fi
    elif (( 8#$(stat -c '%a' "$config") & 8#004 )); then
        # An older install (0644) or an editor that kept the mode: close it to other users.
        say "$config was readable by every user: now 0640 root:$SERVICE_USER"
        run chown "root:$SERVICE_USER" "$config"
        run chmod 0640 "$config"
    fi
    ensure_dir "$STATE_DIR" "$SERVICE_USER:$SERVICE_USER" 0750
    ensure_dir "$STATE_DIR/models" "$SERVICE_USER:$SERVICE_USER" 0750
    # Group-writable and setgid: deploy users (group maskipy) upload here, the service user reads.
    ensure_dir "$STATE_DIR/models/incoming" "$SERVICE_USER:$SERVICE_USER" 2770
}

install_helpers() {
    # 'maskipy-edge bundle ...' over ssh runs as the service user: it owns the models and may SIGHUP.
    put_file "$WRAPPER" 0755 <<EOF || true
#!/bin/sh
# Installed by maskipy systemd/install.sh.
if [ "\${1:-}" = bundle ] && [ "\$(id -un)" != $SERVICE_USER ]; then
    exec sudo -n -u $SERVICE_USER $PREFIX/bin/maskipy-edge "\$@"
fi
exec $PREFIX/bin/maskipy-edge "\$@"
EOF
    local rule="%$SERVICE_USER ALL=($SERVICE_USER) NOPASSWD: $PREFIX/bin/maskipy-edge bundle *"
    if [[ $DRY_RUN == 0 ]] && ! printf '%s\n' "$rule" | visudo -cqf -; then
        die "visudo rejected the rule for $SUDOERS: $rule"
    fi
    printf '# Installed by maskipy systemd/install.sh.\n%s\n' "$rule" | put_file "$SUDOERS" 0440 || true
}

install_unit() {
    local before=$CHANGED
    CHANGED=0
    if put_file "$UNIT_DST" 0644 <"$REPO/systemd/$SERVICE"; then
        run systemctl daemon-reload
    fi
    systemctl is-enabled --quiet "$SERVICE" 2>/dev/null || run systemctl enable "$SERVICE"
    if ! systemctl is-active --quiet "$SERVICE" 2>/dev/null; then
        run systemctl start "$SERVICE"
    elif [[ $before == 1 || $CHANGED == 1 ]]; then
        run systemctl restart "$SERVICE"
    fi
    CHANGED=$((before | CHANGED))
}

uninstall() {
    if systemctl is-active --quiet "$SERVICE" 2>/dev/null || systemctl is-enabled --quiet "$SERVICE" 2>/dev/null; then
        run systemctl disable --now "$SERVICE"
    fi
    local path
    for path in "$UNIT_DST" "$WRAPPER" "$SUDOERS"; do
        [[ -e $path ]] && run rm -f "$path"
    done
    [[ $CHANGED == 1 ]] && run systemctl daemon-reload
    [[ -d $PREFIX ]] && run rm -rf "$PREFIX"
    say "kept $CONF_DIR, $STATE_DIR (counts, events, models), the journal and user '$SERVICE_USER'"
    say "to remove those too: sudo rm -rf $CONF_DIR $STATE_DIR && sudo userdel $SERVICE_USER"
}

main() {
    while [[ $# -gt 0 ]]; do
        case $1 in
            --dry-run) DRY_RUN=1 ;;
            --uninstall) ACTION=uninstall ;;
            --no-apt) USE_APT=0 ;;
            --repo) REPO=$(cd "${2:?--repo needs a directory}" && pwd); shift ;;
            --deploy-user) DEPLOY_USER=${2:?--deploy-user needs a user name}; shift ;;
            -h|--help) usage; exit 0 ;;
            *) usage >&2; die "unknown option $1" ;;
        esac
        shift
    done
    [[ $DRY_RUN == 1 ]] && say "dry run: nothing will be changed"
    check_system
    if [[ $ACTION == uninstall ]]; then
        uninstall
    else
        [[ $USE_APT == 1 ]] && install_apt
        install_user
        install_venv
        install_dirs
        install_helpers
        install_unit
    fi
    if [[ $CHANGED == 0 ]]; then
        say "nothing to do: already ${ACTION}ed"
    elif [[ $DRY_RUN == 1 ]]; then
        say "dry run done: the commands above are what a real run would do"
    else
        say "done; check it with: systemctl status $SERVICE; journalctl -u $SERVICE -f"
    fi
}

# Sourced (by the tests) it only defines the functions.
if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
    main "$@"
fi
