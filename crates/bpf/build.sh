#!/usr/bin/env bash
# Regenerates the committed BPF object crates/bpf/obj/socket_trace.bpf.o from crates/bpf/c/.
#
# Usage: bash crates/bpf/build.sh            (from anywhere)
#        LOUPE_BPF_OUT=/tmp/x.o bash build.sh (write elsewhere: the freshness test does this)
#
# Needs clang (Debian 12's clang 14 built the committed object). Paths are relative to crates/bpf
# and -fdebug-compilation-dir=. keeps the checkout's absolute path out of the debug info, so the
# output is byte-for-byte deterministic wherever the repository lives: the
# `committed_object_is_fresh` test in crates/bpf runs this script and compares.
#
# To regenerate vmlinux.h as well (only when you need types this one lacks):
#   bpftool btf dump file /sys/kernel/btf/vmlinux format c > crates/bpf/c/vmlinux.h
set -euo pipefail
cd "$(dirname "$0")"
out="${LOUPE_BPF_OUT:-obj/socket_trace.bpf.o}"
mkdir -p "$(dirname "$out")"
clang -target bpf -O2 -g -fdebug-compilation-dir=. -D__TARGET_ARCH_x86 -I c \
	-c c/socket_trace.bpf.c -o "$out"
echo "wrote $out"
