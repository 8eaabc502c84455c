# Shared by the benchmark scripts: builds sreg in release mode and sets $SREG.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
(cd "$root" && cargo build --release --locked -q -p builder)
SREG="$target/release/sreg"
command -v hyperfine >/dev/null || { echo "hyperfine missing: run scripts/setup" >&2; exit 1; }
work="$(mktemp -d "${TMPDIR:-/var/tmp}/sreg-bench.XXXXXX")"
trap 'rm -rf "$work"' EXIT
