#!/usr/bin/env bash
# Job queued -> build started on an idle agent: a release sreg-server
# (SQLite) and one idle `sreg agent --backend native --poll P`; M jobs are
# queued one at a time (each a commit of a one-recipe repository served by
# git daemon), each after the previous one has started, at a random phase
# of the agent's poll. Reports started_at - queued_at (p50, p99, max) as
# the registry recorded them.
#
#   scripts/bench/agent.sh [M] [POLL]      defaults: 40 jobs, 1s (the agent's default is 5s)
source "$(dirname "$0")/common.sh"
m="${1:-40}"
poll="${2:-1s}"
(cd "$root" && cargo build --release --locked -q -p registry-server)
SERVER="$target/release/sreg-server"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

export GIT_AUTHOR_NAME=bench GIT_AUTHOR_EMAIL=bench@example.org
export GIT_COMMITTER_NAME=bench GIT_COMMITTER_EMAIL=bench@example.org
git init -q --bare -b main "$work/git/recipes.git"
git init -q -b main "$work/src"
mkdir -p "$work/src/hello"
printf 'Bootstrap: scratch\n\n%%labels\n    Bench yes\n' > "$work/src/hello/Singularity"
git -C "$work/src" add . && git -C "$work/src" commit -q -m first
for i in $(seq "$m"); do git -C "$work/src" commit -q --allow-empty -m "c$i"; done
git -C "$work/src" push -q "$work/git/recipes.git" main
gport=$(free_port)
git daemon --reuseaddr --base-path="$work/git" --export-all --listen=127.0.0.1 --port="$gport" "$work/git" &
gitd=$!
port=$(free_port)
url="http://127.0.0.1:$port"
"$SERVER" serve --listen "127.0.0.1:$port" --data-dir "$work/data" 2>"$work/server.log" &
server=$!
trap 'kill $agent $server $gitd 2>/dev/null; wait 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do curl -fs "$url/healthz" >/dev/null && break; sleep 0.1; done
"$SERVER" admin --data-dir "$work/data" user add builder --admin >/dev/null
token=$("$SERVER" admin --data-dir "$work/data" token create builder)
curl -fs -X POST "$url/api/v1/projects" -H "Authorization: Bearer $token" -H 'content-type: application/json' \
    -d "{\"name\":\"bench\",\"repository\":\"git://127.0.0.1:$gport/recipes.git\",\"branch\":\"main\",\"collection\":\"builder/bench\"}" >/dev/null
SREG_TOKEN="$token" "$SREG" agent --registry "$url" --backend native --poll "$poll" --work-dir "$work/agent" 2>"$work/agent.log" &
agent=$!
sleep 2
for c in $(git -C "$work/src" rev-list --reverse HEAD | tail -n "$m"); do
    id=$("$SERVER" admin --data-dir "$work/data" build queue --project bench --commit "$c" --recipe hello/Singularity:hello:latest | cut -d' ' -f1)
    until [ "$(curl -fs "$url/api/v1/builds/$id" -H "Authorization: Bearer $token" | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])')" != queued ]; do sleep 0.02; done
    sleep "$(python3 -c 'import random; print(round(random.random(), 3))')"
done
curl -fs "$url/api/v1/builds?project=1&limit=500" -H "Authorization: Bearer $token" | python3 -c '
import json, sys
from datetime import datetime
def t(s): return datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()
jobs = [j for j in json.load(sys.stdin) if j["started_at"]]
d = sorted((t(j["started_at"]) - t(j["queued_at"])) * 1000 for j in jobs)
ok = sum(j["state"] == "succeeded" for j in jobs)
pick = lambda q: d[min(len(d) - 1, int(q * len(d)))]
print(f"queued -> started on an idle agent (--poll '"$poll"'), {len(d)} jobs ({ok} succeeded): p50 {pick(0.5):.0f} ms, p99 {pick(0.99):.0f} ms, max {d[-1]:.0f} ms")
'
