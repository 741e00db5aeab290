#!/usr/bin/env bash
# Regenerates the committed BPF objects crates/bpf/obj/<name>.bpf.o, one per crates/bpf/c/<name>.bpf.c.
#
# Usage: bash crates/bpf/build.sh                 (from anywhere)
#        LOUPE_BPF_OUT_DIR=/tmp/x bash build.sh   (write elsewhere: the freshness test does this)
#
# Needs clang (Debian 12's clang 14 built the committed object). Paths are relative to crates/bpf
# and -fdebug-compilation-dir=. keeps the checkout's absolute path out of the debug info, so the
# output is byte-for-byte deterministic wherever the repository lives: the
# `committed_objects_are_fresh` test in crates/bpf runs this script and compares.
#
# To regenerate vmlinux.h as well (only when you need types this one lacks):
#   bpftool btf dump file /sys/kernel/btf/vmlinux format c > crates/bpf/c/vmlinux.h
set -euo pipefail
cd "$(dirname "$0")"
out_dir="${LOUPE_BPF_OUT_DIR:-obj}"
mkdir -p "$out_dir"
for src in c/*.bpf.c; do
	out="$out_dir/$(basename "$src" .c).o"
	clang -target bpf -O2 -g -fdebug-compilation-dir=. -D__TARGET_ARCH_x86 -I c -c "$src" -o "$out"
	echo "wrote $out"
done
