#!/usr/bin/env bash
# Push and pull of a SIF over loopback (median of five rounds) with `sreg push` / `sreg pull` (both
# verify the sha256), against one hash pass (`openssl dgst -sha256`, which
# uses the CPU's SHA instructions) and one copy (`cp`) of the same file in
# the same run. Also the server's peak RSS during the push and the pull.
#
#   scripts/bench/transfer.sh [SIZE]      default 1G
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
size="${1:-1G}"
(cd "$root" && cargo build --release --locked -q -p registry-server -p builder)
server="$target/release/sreg-server"
sreg="$target/release/sreg"
work="$(mktemp -d "${TMPDIR:-/var/tmp}/sreg-transfer.XXXXXX")"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
cd "$work"

# A real SIF: definition file plus an incompressible primary partition.
printf 'Bootstrap: docker\nFrom: alpine:3.20\n' > r.def
head -c "$size" /dev/urandom > part
siftool new big.sif >/dev/null
siftool add big.sif r.def --datatype 1 >/dev/null
siftool add big.sif part --datatype 4 --parttype 2 --partfs 1 --partarch 2 >/dev/null
rm part
bytes=$(stat -c %s big.sif)
echo "image: $bytes bytes"

seconds() { # command... -> wall seconds; starts with the disk quiet
    local t0 t1
    sync
    t0=$(date +%s.%N); "$@" >/dev/null; t1=$(date +%s.%N)
    python3 -c "print(f'{$t1 - $t0:.3f}')"
}
median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
rounds=5

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn "$server" serve --data-dir data --listen "127.0.0.1:$port" &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done
"$server" admin user add bench --data-dir data 2>/dev/null
export SREG_REGISTRY="http://127.0.0.1:$port" SREG_TOKEN
SREG_TOKEN=$("$server" admin token create bench --data-dir data 2>/dev/null)

peak() { awk '/VmHWM/ {print $2 / 1024 " MiB"}' "/proc/$pid/status"; }
reset_peak() { echo 5 > "/proc/$pid/clear_refs" 2>/dev/null || true; }

# Rounds of: hash, copy, push (a new tag each time, the same content), pull.
hashes=() copies=() pushes=() pulls=()
for r in $(seq "$rounds"); do
    hashes+=("$(seconds openssl dgst -sha256 big.sif)")
    copies+=("$(seconds cp big.sif copy.sif)"); rm copy.sif
    reset_peak
    pushes+=("$(seconds "$sreg" push big.sif "bench/bench/big:r$r")")
    push_rss=$(peak)
    reset_peak
    pulls+=("$(seconds "$sreg" pull "bench/bench/big:r$r" -o pulled.sif)")
    pull_rss=$(peak)
    cmp big.sif pulled.sif
    rm pulled.sif
done
hash_s=$(median "${hashes[@]}") copy_s=$(median "${copies[@]}")
push_s=$(median "${pushes[@]}") pull_s=$(median "${pulls[@]}")
echo "rounds: hash ${hashes[*]} | cp ${copies[*]} | push ${pushes[*]} | pull ${pulls[*]}"

python3 - "$bytes" "$hash_s" "$copy_s" "$push_s" "$pull_s" "$push_rss" "$pull_rss" <<'PY'
import sys
n, h, c, push, pull = int(sys.argv[1]), *map(float, sys.argv[2:6])
mib = n / 2**20
base = h + c
print(f"openssl sha256 {h:.2f} s, cp {c:.2f} s: baseline (one hash + one copy) {base:.2f} s")
print(f"sreg push {push:.2f} s ({mib / push:.0f} MiB/s) = {push / base:.2f}x baseline; server peak RSS {sys.argv[6]}")
print(f"sreg pull {pull:.2f} s ({mib / pull:.0f} MiB/s) = {pull / base:.2f}x baseline; server peak RSS {sys.argv[7]}")
PY
