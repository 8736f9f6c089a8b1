# Shared by scripts/*: install what is missing (Debian, as root), loudly.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
APT_UPDATED=0

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# apt_install PKG... — installs Debian packages, running apt-get update once.
apt_install() {
    command -v apt-get >/dev/null || die "apt-get not found: install $* by hand"
    [ "$(id -u)" = 0 ] || die "need root to install $* (run as root, or install them first)"
    if [ "$APT_UPDATED" = 0 ]; then
        say "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2
        APT_UPDATED=1
    fi
    say "installing $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >&2
}

# need_pkg PKG... — installs the packages dpkg does not list as installed.
need_pkg() {
    local missing=()
    for p in "$@"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    [ ${#missing[@]} -eq 0 ] || apt_install "${missing[@]}"
}

need_rust() {
    command -v cargo >/dev/null || die "cargo not found: install Rust 1.95 or newer (https://rustup.rs), then run this again"
    local v
    v=$(rustc --version | awk '{print $2}')
    [ "$(printf '%s\n1.95.0\n' "$v" | sort -V | head -1)" = "1.95.0" ] \
        || die "Rust $v is too old: keepword needs 1.95 or newer (rustup update)"
}

# Build dependencies: a C compiler for bundled SQLite, libpq for PostgreSQL.
need_build_deps() {
    need_rust
    need_pkg gcc libc6-dev pkg-config libpq-dev
}
