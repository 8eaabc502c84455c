#!/bin/sh
# Makes a release archive for `install.sh --archive`:
#   OUT/sreg-VERSION-linux-ARCH.tar.gz and OUT/sreg-VERSION-linux-ARCH.tar.gz.sha256
# holding sreg-VERSION-linux-ARCH/{bin/sreg, bin/sreg-server,
# share/sreg/systemd/*, share/doc/sreg/README.md, install.sh}.
set -eu

usage() {
    cat <<'EOF'
Usage: scripts/package.sh [--bin-dir DIR] [--out DIR] [--arch ARCH] [--version V]

  --bin-dir DIR   package the sreg and sreg-server already built in DIR
                  (default: build them with `cargo build --release --locked`)
  --out DIR       where the archive and its .sha256 go (default: dist)
  --arch ARCH     the binaries' architecture, x86_64 or aarch64 (default: this
                  machine's; give it for cross-built binaries)
  --version V     the version in the name (default: what `sreg --version` says)
EOF
}

die() {
    printf 'package.sh: error: %s\n' "$*" >&2
    exit 1
}

root=$(cd "$(dirname "$0")/.." && pwd)
bin_dir=''
out=dist
arch=''
version=''
while [ $# -gt 0 ]; do
    case "$1" in
    --bin-dir | --out | --arch | --version)
        [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value"
        case "$1" in
        --bin-dir) bin_dir=$2 ;;
        --out) out=$2 ;;
        --arch) arch=$2 ;;
        --version) version=$2 ;;
        esac
        shift 2
        ;;
    -h | --help)
        usage
        exit 0
        ;;
    *) die "unknown option '$1' (see --help)" ;;
    esac
done

if [ -z "$bin_dir" ]; then
    (cd "$root" && cargo build --release --locked -p builder -p registry-server)
    bin_dir=${CARGO_TARGET_DIR:-$root/target}/release
fi
for b in sreg sreg-server; do
    [ -x "$bin_dir/$b" ] || die "no $b in $bin_dir (build it, or pass --bin-dir)"
done
if [ -z "$arch" ]; then
    case "$(uname -m)" in
    x86_64 | amd64) arch=x86_64 ;;
    aarch64 | arm64) arch=aarch64 ;;
    *) die "unknown architecture $(uname -m): pass --arch" ;;
    esac
fi
case "$arch" in x86_64 | aarch64) ;; *) die "--arch must be x86_64 or aarch64" ;; esac
if [ -z "$version" ]; then
    version=$("$bin_dir/sreg" --version | cut -d' ' -f2)
    [ -n "$version" ] || die "cannot tell the version: pass --version"
fi

name=sreg-$version-linux-$arch
stage=$(mktemp -d "${TMPDIR:-/tmp}/sreg-package.XXXXXX")
trap 'rm -rf "$stage"' EXIT
top=$stage/$name
mkdir -p "$top/bin" "$top/share/sreg/systemd" "$top/share/doc/sreg"
cp "$bin_dir/sreg" "$bin_dir/sreg-server" "$top/bin/"
cp "$root"/scripts/systemd/* "$top/share/sreg/systemd/"
cp "$root/README.md" "$top/share/doc/sreg/"
cp "$root/scripts/install.sh" "$top/install.sh"
chmod 0755 "$top/bin/sreg" "$top/bin/sreg-server" "$top/install.sh"

mkdir -p "$out"
# Written under a temporary name: a half-written archive never has the final one.
tar -C "$stage" --owner=0 --group=0 --numeric-owner --sort=name -czf "$out/.$name.tar.gz.part" "$name"
mv -f "$out/.$name.tar.gz.part" "$out/$name.tar.gz"
(cd "$out" && sha256sum "$name.tar.gz" >"$name.tar.gz.sha256")
echo "$out/$name.tar.gz"
