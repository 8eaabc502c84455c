#!/usr/bin/env bash
# Recipe discovery and parsing in a tree of N recipes (default 10,000):
# reports recipes per second for `sreg recipes --json`.
#
#   scripts/bench/recipes.sh [N]
source "$(dirname "$0")/common.sh"
n="${1:-10000}"
tree="$work/tree"
python3 - "$tree" "$n" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
styles = [
    "Bootstrap: docker\nFrom: ubuntu:{i}.04\n\n%labels\n    Maintainer bench\n    Version {i}\n\n%post\n    apt-get update && apt-get install -y python3\n\n%runscript\n    exec python3 \"$@\"\n",
    "Bootstrap: library\nFrom: alpine:3.{i}\n\n%files\n    app.py /opt/app.py\n\n%environment\n    export LC_ALL=C\n\n%help\n    Tool {i}.\n",
    "Bootstrap: docker\nFrom: golang:1.22\nStage: build\n\n%post\n    go build -o /out/app ./...\n\nBootstrap: docker\nFrom: debian:bookworm-slim\nStage: final\n\n%files from build\n    /out/app /usr/local/bin/app\n",
    "Bootstrap: debootstrap\nOSVersion: bookworm\nMirrorURL: http://deb.debian.org/debian\n\n%arguments\n    VERSION={i}\n\n%post\n    echo {{{{ VERSION }}}} > /version\n\n%apprun tool\n    exec tool \"$@\"\n",
]
for i in range(n):
    d = os.path.join(root, f"group{i % 100:02d}", f"tool{i}")
    os.makedirs(d, exist_ok=True)
    name = ["Singularity", f"Singularity.v{i}.0", f"{i}.def", "Apptainer"][i % 4]
    with open(os.path.join(d, name), "w") as f:
        f.write(styles[i % 4].format(i=i))
PY
count=$("$SREG" recipes "$tree" --json | python3 -c 'import json,sys; print(len(json.load(sys.stdin)["recipes"]))')
echo "recipes found: $count of $n"
[ "$count" -eq "$n" ] || { echo "expected $n recipes" >&2; exit 1; }
hyperfine --warmup 2 --runs 10 -N --export-json "$work/r.json" "$SREG recipes $tree --json"
python3 - "$work/r.json" "$n" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))["results"][0]
n = int(sys.argv[2])
print(f"discovery + parse + JSON: {r['mean']*1000:.1f} ms for {n} recipes = {n / r['mean']:,.0f} recipes/s (min {n / r['max']:,.0f})")
PY
