#!/usr/bin/env bash
# Metadata and shub lookups at scale: a registry with N containers (default
# 100,000), each with one image tagged `latest`, then wrk against
#   library:  GET /v1/images/bench/cNNN/nNNNNN:latest?arch=amd64
#   shub:     GET /api/container/cNNN/nNNNNN:latest
# on random containers. Reports p50 and p99 latency.
#
#   scripts/bench/lookups.sh [N] [SECONDS]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
n="${1:-100000}"
secs="${2:-10}"
(cd "$root" && cargo build --release --locked -q -p registry-server)
server="$target/release/sreg-server"
command -v wrk >/dev/null || { echo "wrk missing: run scripts/setup" >&2; exit 1; }
work="$(mktemp -d "${TMPDIR:-/var/tmp}/sreg-lookups.XXXXXX")"
pid=""
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT

"$server" migrate --data-dir "$work/data" 2>/dev/null
per=1000
collections=$(( (n + per - 1) / per ))
python3 - "$work/data/sreg.db" "$n" "$per" <<'PY'
import sqlite3, sys, hashlib
db, n, per = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
c = sqlite3.connect(db)
now = 1_700_000_000_000
c.execute("INSERT INTO entities (id, name, kind, created_at) VALUES (1, 'bench', 'user', ?)", (now,))
c.execute("INSERT INTO users (entity_id) VALUES (1)")
for k in range((n + per - 1) // per):
    c.execute("INSERT INTO collections (id, entity_id, name, created_at, updated_at) VALUES (?, 1, ?, ?, ?)",
              (k + 1, f"c{k:03d}", now, now))
rows_c, rows_i, rows_t, rows_b = [], [], [], []
for i in range(n):
    h = hashlib.sha256(str(i).encode()).hexdigest()
    rows_c.append((i + 1, i // per + 1, f"n{i:06d}", now, now))
    rows_b.append((f"sha256:{h}", 1000 + i, now))
    rows_i.append((i + 1, i + 1, f"sha256.{h}", 1000 + i, "amd64", f"sha256:{h}", now, now))
    rows_t.append((i + 1, "amd64", "latest", i + 1, now))
c.executemany("INSERT INTO containers (id, collection_id, name, created_at, updated_at) VALUES (?,?,?,?,?)", rows_c)
c.executemany("INSERT INTO blobs (digest, size, created_at) VALUES (?,?,?)", rows_b)
c.executemany("INSERT INTO images (id, container_id, hash, size, arch, uploaded, blob_digest, created_at, uploaded_at) VALUES (?,?,?,?,?,1,?,?,?)", rows_i)
c.executemany("INSERT INTO tags (container_id, arch, name, image_id, updated_at) VALUES (?,?,?,?,?)", rows_t)
c.commit()
print(f"seeded {n} containers in {(n + per - 1) // per} collections")
PY

port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
RUST_LOG=warn "$server" serve --data-dir "$work/data" --listen "127.0.0.1:$port" &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break; sleep 0.1; done

run() { # name path-template (%c collection, %n container)
    cat > "$work/req.lua" <<LUA
math.randomseed(42)
request = function()
  local i = math.random(0, $n - 1)
  local path = string.format("$2", math.floor(i / $per), i)
  return wrk.format("GET", path)
end
LUA
    echo "== $1"
    wrk -t2 -c16 -d"${secs}s" --latency -s "$work/req.lua" "http://127.0.0.1:$port" |
        grep -E "Requests/sec|Non-2xx| 50%| 99%|Latency "
}
run "library image lookup" "/v1/images/bench/c%03d/n%06d:latest?arch=amd64"
run "shub container lookup" "/api/container/c%03d/n%06d:latest"
