#!/bin/sh
# Installs sreg (the CLI) and, from source or a release archive, sreg-server.
#
#   curl -fsSL https://REGISTRY/install.sh | sh            # sreg from that registry
#   sh install.sh --registry https://REGISTRY [--bin-dir DIR]
#   sh install.sh --source DIR|GIT_URL [--systemd]         # both, built with cargo
#   sh install.sh --archive FILE|URL [--systemd]           # both, from scripts/package.sh
#
# POSIX sh (dash, busybox ash). Nothing is half-installed: each binary is
# written to a temporary file in the target folder, checked to run, then
# renamed into place; a checksum that does not match installs nothing.
set -eu

# sreg-server rewrites this line when it serves the script at /install.sh.
DEFAULT_REGISTRY=''

usage() {
    cat <<'EOF'
Usage: install.sh [MODE] [OPTIONS]

Modes (one; the default is --registry):
  --registry URL      download sreg for this machine from the registry at URL
                      (default: $SREG_REGISTRY, else the registry this script
                      was downloaded from), verified against its .sha256
  --source DIR|GIT    build sreg and sreg-server with cargo from a source tree
                      or a git URL, and install both
  --archive FILE|URL  install sreg and sreg-server from a release archive made
                      by scripts/package.sh; FILE.sha256 (or URL.sha256) beside
                      it is verified

Options:
  --bin-dir DIR       where the binaries go (default: /usr/local/bin as root,
                      else ~/.local/bin)
  --sha256 HEX        the checksum the download must have (pins a version;
                      with --registry or --archive)
  --systemd           with --source or --archive, as root: also install the
                      systemd units, a 'sreg' system user and /var/lib/sreg
                      (nothing is started)
  --debug             with --source: a debug build (faster to build)
  -h, --help          this help

Environment: SREG_REGISTRY (default registry), CARGO_TARGET_DIR (--source
reuses that build folder), DESTDIR (with --systemd: a staging root for the
unit files and folders; no user is created then).
EOF
}

say() { printf 'install.sh: %s\n' "$*" >&2; }
die() {
    say "error: $*"
    exit 1
}
need_value() { [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)"; }

mode=registry
target=''
bin_dir=''
pin=''
systemd=no
debug=no
registry_given=no
while [ $# -gt 0 ]; do
    case "$1" in
    --registry)
        need_value "$@"
        mode=registry target=$2 registry_given=yes
        shift 2
        ;;
    --registry=*) mode=registry target=${1#*=} registry_given=yes && shift ;;
    --source)
        need_value "$@"
        mode=source target=$2
        shift 2
        ;;
    --source=*) mode=source target=${1#*=} && shift ;;
    --archive)
        need_value "$@"
        mode=archive target=$2
        shift 2
        ;;
    --archive=*) mode=archive target=${1#*=} && shift ;;
    --bin-dir)
        need_value "$@"
        bin_dir=$2
        shift 2
        ;;
    --bin-dir=*) bin_dir=${1#*=} && shift ;;
    --sha256)
        need_value "$@"
        pin=$2
        shift 2
        ;;
    --sha256=*) pin=${1#*=} && shift ;;
    --systemd) systemd=yes && shift ;;
    --debug) debug=yes && shift ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
done

if [ "$mode" = registry ] && [ "$registry_given" = no ]; then
    target=${SREG_REGISTRY:-$DEFAULT_REGISTRY}
    [ -n "$target" ] || die "no registry given: pass --registry URL or set SREG_REGISTRY"
fi
if [ -n "$pin" ]; then
    [ "$mode" != source ] || die "--sha256 goes with --registry or --archive"
    pin=$(printf '%s' "$pin" | tr 'A-F' 'a-f')
    case "$pin" in *[!0-9a-f]*) die "--sha256 '$pin' is not a hex sha256" ;; esac
    [ ${#pin} -eq 64 ] || die "--sha256 '$pin' is not 64 hex digits"
fi
if [ "$systemd" = yes ]; then
    [ "$mode" != registry ] || die "--systemd goes with --source or --archive (the registry serves the sreg client only)"
    [ -n "${DESTDIR:-}" ] || [ "$(id -u)" -eq 0 ] || die "--systemd needs root (or DESTDIR for a staging root)"
fi
[ "$(uname -s)" = Linux ] || die "sreg runs on Linux; this is $(uname -s)"

if [ -z "$bin_dir" ]; then
    if [ "$(id -u)" -eq 0 ]; then
        bin_dir=/usr/local/bin
    else
        [ -n "${HOME:-}" ] || die "HOME is not set: pass --bin-dir DIR"
        bin_dir=$HOME/.local/bin
    fi
fi

# Temporary files, removed however the script ends.
work=$(mktemp -d "${TMPDIR:-/tmp}/sreg-install.XXXXXX")
partial=''
cleanup() {
    rm -rf "$work"
    [ -z "$partial" ] || rm -f "$partial"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

machine_arch() {
    case "$(uname -m)" in
    x86_64 | amd64) echo x86_64 ;;
    aarch64 | arm64) echo aarch64 ;;
    *) die "no sreg build for this machine's architecture '$(uname -m)' (x86_64 and aarch64 exist); try --source" ;;
    esac
}

# fetch URL FILE: downloads, or shows what the server answered and fails.
fetch() {
    if command -v curl >/dev/null 2>&1; then
        code=$(curl -sSL --retry 2 -o "$2" -w '%{http_code}' "$1") ||
            die "cannot download $1 (see curl's message above)"
        if [ "$code" != 200 ]; then
            say "$1 answered HTTP $code:"
            head -c 2000 "$2" | sed 's/^/    /' >&2
            die "download failed; nothing was installed"
        fi
    elif command -v wget >/dev/null 2>&1; then
        if ! wget -q --content-on-error -O "$2" "$1"; then
            say "cannot download $1:"
            head -c 2000 "$2" 2>/dev/null | sed 's/^/    /' >&2
            die "download failed; nothing was installed"
        fi
    else
        die "neither curl nor wget is installed: install one of them"
    fi
}

sha256_of() {
    if command -v sha256sum >/dev/null 2>&1; then
        sha256sum "$1" | cut -d' ' -f1
    elif command -v shasum >/dev/null 2>&1; then
        shasum -a 256 "$1" | cut -d' ' -f1
    else
        die "neither sha256sum nor shasum is installed: cannot verify the download"
    fi
}

is_sha256() {
    case "$1" in *[!0-9a-f]* | '') return 1 ;; esac
    [ ${#1} -eq 64 ]
}

# checksum_from FILE: the first word of a sha256sum line, checked.
checksum_from() {
    sum=$(head -n 1 "$1" | cut -d' ' -f1 | tr 'A-F' 'a-f')
    is_sha256 "$sum" || die "$2 is not a sha256sum line; nothing was installed"
    echo "$sum"
}

# verify FILE EXPECTED WHAT
verify() {
    actual=$(sha256_of "$1")
    if [ "$actual" != "$2" ]; then
        say "checksum mismatch for $3:"
        say "    expected $2"
        say "    got      $actual"
        die "the download is corrupt or was changed; nothing was installed"
    fi
}

# install_bin SRC NAME: copies SRC to BIN_DIR/NAME through a temporary file
# in BIN_DIR that must run `NAME --version` before it is renamed into place.
install_bin() {
    mkdir -p "$bin_dir" || die "cannot create $bin_dir (use --bin-dir DIR)"
    partial=$(mktemp "$bin_dir/.$2.XXXXXX") || die "cannot write in $bin_dir (use --bin-dir DIR, or run as root)"
    cp "$1" "$partial"
    chmod 0755 "$partial"
    version=$("$partial" --version 2>&1) ||
        die "the new $2 does not run on this machine ($version); nothing was installed"
    mv -f "$partial" "$bin_dir/$2"
    partial=''
    say "installed $version as $bin_dir/$2"
}

# install_systemd UNITS_DIR: units, user, folders; starts nothing.
install_systemd() {
    root=${DESTDIR:-}
    unit_dir=$root/etc/systemd/system
    mkdir -p "$unit_dir" "$root/etc/sreg"
    for unit in "$1"/*.service; do
        [ -f "$unit" ] || die "no unit files in $1"
        name=$(basename "$unit")
        # The units name /usr/local/bin; point them at where the binaries went.
        sed "s#/usr/local/bin/#$bin_dir/#g" "$unit" >"$work/$name"
        mv -f "$work/$name" "$unit_dir/$name"
        chmod 0644 "$unit_dir/$name"
        say "installed $unit_dir/$name"
    done
    if [ -f "$1/sreg-agent.env.example" ]; then
        cp "$1/sreg-agent.env.example" "$root/etc/sreg/agent.env.example"
    fi
    # sreg-server runs as the static user 'sreg' (systemd uses an existing
    # user of the name instead of a dynamic one).
    mkdir -p "$unit_dir/sreg-server.service.d"
    printf '[Service]\nUser=sreg\nGroup=sreg\n' >"$unit_dir/sreg-server.service.d/10-user.conf"
    mkdir -p "$root/var/lib/sreg"
    chmod 0700 "$root/var/lib/sreg"
    if [ -n "$root" ]; then
        say "DESTDIR is set: no user created; create the system user 'sreg' on the target"
    else
        if ! id sreg >/dev/null 2>&1; then
            if command -v useradd >/dev/null 2>&1; then
                useradd --system --home-dir /var/lib/sreg --no-create-home \
                    --shell /usr/sbin/nologin --user-group sreg
            else
                adduser -S -D -H -h /var/lib/sreg -s /sbin/nologin sreg
            fi
            say "created the system user 'sreg'"
        fi
        chown sreg:sreg /var/lib/sreg
    fi
    say "nothing was started. Put settings in /etc/sreg/server.env (SREG_PUBLIC_URL=...),"
    say "and for an agent /etc/sreg/agent.env (see agent.env.example), then run:"
    say "    systemctl daemon-reload && systemctl enable --now sreg-server"
    say "    systemctl enable --now sreg-agent     # on a build node"
}

from_registry() {
    registry=${target%/}
    arch=$(machine_arch)
    url=$registry/downloads/sreg/linux-$arch
    if [ -n "$pin" ]; then
        expected=$pin
    else
        fetch "$url.sha256" "$work/sreg.sha256"
        expected=$(checksum_from "$work/sreg.sha256" "$url.sha256")
    fi
    say "downloading $url"
    fetch "$url" "$work/sreg"
    verify "$work/sreg" "$expected" "$url"
    install_bin "$work/sreg" sreg
}

from_archive() {
    case "$target" in
    http://* | https://*)
        name=$(basename "$target")
        fetch "$target" "$work/$name"
        archive=$work/$name
        [ -n "$pin" ] || fetch "$target.sha256" "$work/$name.sha256"
        sums=$work/$name.sha256
        ;;
    *)
        [ -f "$target" ] || die "no archive at $target"
        archive=$target
        sums=$target.sha256
        ;;
    esac
    if [ -n "$pin" ]; then
        expected=$pin
    else
        [ -f "$sums" ] || die "no checksum file $sums beside the archive (or pass --sha256 HEX); nothing was installed"
        expected=$(checksum_from "$sums" "$sums")
    fi
    verify "$archive" "$expected" "$target"
    mkdir "$work/x"
    tar -xzf "$archive" -C "$work/x" || die "cannot unpack $target; nothing was installed"
    top=$(find "$work/x" -mindepth 2 -maxdepth 3 -path '*/bin/sreg' | head -n 1)
    [ -n "$top" ] || die "$target holds no bin/sreg: not an archive made by scripts/package.sh"
    top=$(dirname "$(dirname "$top")")
    [ -f "$top/bin/sreg-server" ] || die "$target holds no bin/sreg-server"
    install_bin "$top/bin/sreg" sreg
    install_bin "$top/bin/sreg-server" sreg-server
    [ "$systemd" = no ] || install_systemd "$top/share/sreg/systemd"
}

from_source() {
    command -v cargo >/dev/null 2>&1 ||
        die "cargo is not installed: install a Rust toolchain (https://rustup.rs), or use --registry or --archive"
    if [ -d "$target" ]; then
        src=$target
    else
        case "$target" in
        *://* | git@* | *.git) ;;
        *) die "--source $target is neither a folder nor a git URL" ;;
        esac
        command -v git >/dev/null 2>&1 || die "git is not installed: needed to clone $target"
        say "cloning $target"
        git clone --quiet --depth 1 "$target" "$work/src" || die "cannot clone $target"
        src=$work/src
    fi
    [ -f "$src/builder/Cargo.toml" ] && [ -f "$src/registry-server/Cargo.toml" ] ||
        die "$src is not an sreg source tree (no builder/ and registry-server/)"
    profile=''
    [ "$debug" = no ] || profile=--debug
    for crate in builder registry-server; do
        say "building $crate with cargo (this takes a while the first time)"
        # Built into a staging root, so that the binaries land atomically.
        # shellcheck disable=SC2086 # $profile is empty or one word
        cargo install --quiet --locked $profile --path "$src/$crate" --root "$work/root" ||
            die "cargo install of $crate failed (see above); nothing more was installed"
    done
    install_bin "$work/root/bin/sreg" sreg
    install_bin "$work/root/bin/sreg-server" sreg-server
    [ "$systemd" = no ] || install_systemd "$src/scripts/systemd"
}

case "$mode" in
registry) from_registry ;;
archive) from_archive ;;
source) from_source ;;
esac

case ":${PATH:-}:" in
*":$bin_dir:"*) ;;
*) say "note: $bin_dir is not on your PATH; add it, e.g. export PATH=\"$bin_dir:\$PATH\"" ;;
esac
