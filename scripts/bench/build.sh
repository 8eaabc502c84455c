#!/usr/bin/env bash
# `sreg build --backend native` of a recipe whose only work is packing a
# prepared root filesystem (`Bootstrap: localimage`, `From: TREE`, nothing
# else), against `mksquashfs` of the same tree with the same compression, in
# the same run. Aim: within 1.2x. The tree is a debootstrap minbase bookworm
# (~200 MB), made once and kept in /var/tmp/sreg-bench-cache (needs root and
# the Debian mirror; a copy of /usr stands in when debootstrap cannot run).
#
#   scripts/bench/build.sh [COMP]     mksquashfs compression, default gzip
source "$(dirname "$0")/common.sh"
comp="${1:-gzip}"
cache=/var/tmp/sreg-bench-cache
tree="$cache/bookworm-minbase"

if [ ! -d "$tree" ]; then
    mkdir -p "$cache"
    building="$(mktemp -d "$cache/.building.XXXXXX")"
    if [ "$(id -u)" = 0 ] && command -v debootstrap >/dev/null &&
        debootstrap --variant=minbase bookworm "$building/root" http://deb.debian.org/debian >"$building/log" 2>&1; then
        echo "tree: debootstrap minbase bookworm"
    else
        echo "debootstrap could not run (see $building/log): a copy of /usr stands in" >&2
        rm -rf "$building/root" && mkdir -p "$building/root"
        cp -a /usr "$building/root/usr"
    fi
    mv "$building/root" "$tree" && rm -rf "$building"
fi
echo "tree: $tree ($(du -sh "$tree" | cut -f1), $(find "$tree" | wc -l) entries)"

cd "$work"
printf 'Bootstrap: localimage\nFrom: %s\n' "$tree" > recipe.def
# The build folder goes beside OUT: in $work, on the tree's filesystem when
# /var/tmp holds both, so the tree is hard-linked rather than copied.
hyperfine --warmup 1 --runs 5 --export-json times.json \
    -n "sreg build --backend native" \
    "$SREG build recipe.def -o out.sif --backend native --force --quiet --squashfs-comp $comp" \
    -n "mksquashfs" \
    "mksquashfs $tree out.squashfs -noappend -no-progress -quiet -comp $comp"
ls -l out.sif out.squashfs
python3 - times.json <<'PY'
import json, sys
r = {x["command"]: x["median"] for x in json.load(open(sys.argv[1]))["results"]}
build, squash = r["sreg build --backend native"], r["mksquashfs"]
print(f"native build {build:.2f} s, mksquashfs {squash:.2f} s (medians): {build / squash:.2f}x (aim: within 1.2x)")
PY
