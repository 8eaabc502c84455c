#!/usr/bin/env bash
# Build triggers: change detection in a repository of N recipes (default
# 1,000) with one changed, by `sreg recipes --changed-since` and by the
# registry's scan; and webhook received -> job queued over M signed GitHub
# webhooks (default 200), each for a push changing one recipe, sent one at
# a time to an otherwise idle registry (release sreg-server, SQLite, the
# repository served by a local git daemon).
#
#   scripts/bench/hooks.sh [N] [M]
source "$(dirname "$0")/common.sh"
n="${1:-1000}"
m="${2:-200}"
(cd "$root" && cargo build --release --locked -q -p registry-server)
SERVER="$target/release/sreg-server"

# A repository of N recipes, then M commits each changing one of them.
repo="$work/work"
python3 - "$repo" "$n" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(root, f"group{i % 50:02d}", f"tool{i}")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "Singularity"), "w") as f:
        f.write(f"Bootstrap: docker\nFrom: debian:bookworm-slim\n\n%labels\n    Version 0\n\n%post\n    echo tool{i} > /tool\n")
    with open(os.path.join(d, "README.md"), "w") as f:
        f.write(f"tool {i}\n")
PY
export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.org
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.org
git -C "$repo" init -q -b main
git -C "$repo" add -A && git -C "$repo" commit -q -m "$n recipes"
for i in $(seq 1 "$m"); do
    f="$repo/group$(printf %02d $((i % 50)))/tool$i/Singularity"
    sed -i "s/Version .*/Version $i/" "$f"
    git -C "$repo" commit -q -am "tool$i v$i"
done
echo "repository: $n recipes, $m commits each changing one"

echo "== change detection: sreg recipes --changed-since HEAD~1 (one recipe changed)"
changed=$("$SREG" recipes "$repo" --changed-since HEAD~1 --json |
    python3 -c 'import json,sys; print(len(json.load(sys.stdin)["rebuild"]))')
[ "$changed" -eq 1 ] || { echo "expected 1 changed recipe, got $changed" >&2; exit 1; }
hyperfine --warmup 2 --runs 10 -N --export-json "$work/changed.json" \
    "$SREG recipes $repo --changed-since HEAD~1 --json"

# The registry and the git daemon serving a bare copy of the repository.
# Served at the first commit; each later one is "pushed" (the branch moved
# to it) just before its webhook, so the registry's scan fetches it.
git clone -q --bare "$repo" "$work/served/recipes.git"
git -C "$work/served/recipes.git" update-ref refs/heads/main "$(git -C "$repo" rev-list --max-parents=0 HEAD)"
gport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$(git --exec-path)/git-daemon" --reuseaddr --export-all --listen=127.0.0.1 --port="$gport" \
    --base-path="$work/served" "$work/served" &
gpid=$!
data="$work/data"
RUST_LOG=info "$SERVER" serve --listen 127.0.0.1:0 --data-dir "$data" 2>"$work/server.log" &
spid=$!
trap 'kill $spid $gpid 2>/dev/null; wait $spid $gpid 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do grep -q "sreg-server ready" "$work/server.log" && break; sleep 0.1; done
url="http://$(grep -o 'listen=[^ ]*' "$work/server.log" | head -1 | cut -d= -f2)"
"$SERVER" admin user add bench --data-dir "$data" >/dev/null
token=$("$SERVER" admin token create bench --data-dir "$data")
echo "registry at $url, repository at git://127.0.0.1:$gport/recipes.git"

python3 - "$url" "$token" "git://127.0.0.1:$gport/recipes.git" "$repo" "$m" "$data/sreg.db" "$work/server.log" "$work/served/recipes.git" <<'PY'
import hashlib, hmac, json, re, sqlite3, subprocess, sys, time, urllib.request

url, token, repo_url, repo, m, db, log, served = sys.argv[1:9]
m = int(m)
secret = "bench-webhook-secret-0123456789"

def call(method, path, body=None, headers=None):
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    h = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    h.update(headers or {})
    req = urllib.request.Request(url + path, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")

status, created = call("POST", "/api/v1/projects", {
    "name": "bench", "repository": repo_url, "branch": "main",
    "collection": "bench/images", "webhook_secret": secret})
assert status == 201, created
pid = created["project"]["id"]
commits = subprocess.run(["git", "-C", repo, "rev-list", "--reverse", "HEAD"],
                         capture_output=True, text=True, check=True).stdout.split()
zero = "0" * 40

def hook(delivery, before, after):
    body = json.dumps({"ref": "refs/heads/main", "before": before, "after": after,
                       "repository": {"clone_url": repo_url}}).encode()
    sig = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    status, answer = call("POST", "/api/v1/hooks/github", body, {
        "X-GitHub-Event": "push", "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": "sha256=" + sig})
    assert status == 202, (status, answer)

def count(sql):
    con = sqlite3.connect(db)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()

def jobs():
    return count("SELECT COUNT(*) FROM build_jobs")

def scans_done():
    errors = count("SELECT COUNT(*) FROM build_scans WHERE error IS NOT NULL")
    assert errors == 0, "a scan failed: see the server log"
    return count("SELECT COUNT(*) FROM build_scans WHERE done_at IS NOT NULL")

def wait_scans(k):
    while scans_done() < k:
        time.sleep(0.002)

# First import: every recipe queued (the mirror is cloned too).
t = time.monotonic()
hook("import", zero, commits[0])
wait_scans(1)
first = time.monotonic() - t
print(f"== first import: {jobs()} jobs queued in {first * 1000:.0f} ms (clone of the mirror included)")

# One webhook at a time, each a push changing one recipe.
lat = []
for i in range(1, m + 1):
    subprocess.run(["git", "-C", served, "update-ref", "refs/heads/main", commits[i]], check=True)
    t = time.monotonic()
    hook(f"d{i}", commits[i - 1], commits[i])
    wait_scans(i + 1)
    lat.append(time.monotonic() - t)
n_jobs = jobs()

con = sqlite3.connect(db)
server_lat = [r[0] for r in con.execute(
    """SELECT j.queued_at - d.received_at FROM build_webhook_deliveries d
       JOIN build_scans s ON s.requested_at = d.received_at AND s.after_commit IS NOT NULL
       JOIN build_jobs j ON j.commit_sha = s.after_commit
       WHERE d.delivery_id LIKE 'd%'""")]
con.close()

def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]

detect = [int(x) for x in re.findall(r"detect_ms=(\d+)", open(log).read())][1:]
fetch = [int(x) for x in re.findall(r"fetch_ms=(\d+)", open(log).read())][1:]
print(f"== {m} webhooks, one recipe changed each: {n_jobs} jobs in all")
print(f"server scan, change detection alone (changed_recipes on the mirror): "
      f"p50 {pct(detect, 50)} ms, p99 {pct(detect, 99)} ms")
print(f"server scan, mirror fetch (git fetch of the pushed commit): "
      f"p50 {pct(fetch, 50)} ms, p99 {pct(fetch, 99)} ms")
print(f"webhook received -> job queued (server timestamps, ms): "
      f"p50 {pct(server_lat, 50)}, p99 {pct(server_lat, 99)}, max {max(server_lat)} (n={len(server_lat)})")
print(f"webhook sent -> scan done, seen by the client: "
      f"p50 {pct(lat, 50) * 1000:.1f} ms, p99 {pct(lat, 99) * 1000:.1f} ms")
PY
python3 - "$work/changed.json" "$n" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
print(f"sreg recipes --changed-since HEAD~1 in {sys.argv[2]} recipes: mean {r['mean']*1000:.1f} ms, min {r['min']*1000:.1f} ms")
PY
