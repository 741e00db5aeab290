// SPDX-License-Identifier: GPL-2.0
/*
 * Loupe CPU profiler: a perf_event program the loader attaches to a software CPU clock on every online CPU
 * (~99 Hz each).
 *
 * Owns the kernel half of profiling: per sample, the kernel stack and the frame-pointer user stack go to the
 * current window's stack map (BPF_MAP_TYPE_STACK_TRACE). Then, by the load-time mode:
 *  - frame pointers (loupe_copy_stack == 0): the sample is counted in the current window's `counts_<w>` hash
 *    (key: tgid, user stack id, kernel stack id), so a window costs one map entry per distinct stack;
 *  - copied stacks (loupe_copy_stack > 0): the user registers (ip, sp, bp) and up to loupe_copy_stack bytes
 *    of the user stack from sp upward go to the `samples` ring buffer, so user space can unwind binaries
 *    built without frame pointers with their .eh_frame (DWARF CFI). Counting is then done in user space.
 * User space flips `control[0]` (the window, 0 or 1) every window, then reads and clears the other window's
 * maps while this program fills the new ones: the double buffering keeps stack ids valid while they are read.
 * Must not symbolize or unwind anything: that is user space (crates/collector/src/profiler).
 *
 * Only perf events are used (no kprobes or fentry on the target kernels).
 *
 * Rebuild: `bash crates/bpf/build.sh` (the object is committed and checked for freshness).
 */
#include "vmlinux.h"
#include "bpf_helpers.h"
#include "bpf_core_read.h"
#include "bpf_tracing.h"

char LICENSE[] SEC("license") = "GPL";

/* Largest user stack copy, and the size of every stack map value (PERF_MAX_STACK_DEPTH frames). */
#define LOUPE_PROFILE_STACK_MAX 32768
#define LOUPE_PROFILE_MAX_DEPTH 127
#define LOUPE_PROFILE_HEADER 48
/* User addresses lie below this on x86_64 (the top of the lower canonical half). */
#define LOUPE_USER_ADDR_END 0x0000800000000000ULL

/* Set by the loader before load (EbpfLoader::override_global). */
const volatile __u32 loupe_profile_exclude_tgid = 0; /* a process never sampled (0: none) */
const volatile __u32 loupe_profile_only_tgid = 0;    /* if set, the only process sampled (tests) */
const volatile __u32 loupe_copy_stack = 0;           /* bytes of user stack copied per sample; 0: count in the kernel */
const volatile __u32 loupe_profile_wake_every = 16;  /* wake the reader every N ring records per CPU */

/* Index of each counter in `profile_stats` (mirrored by the collector's profiler loader). */
#define STAT_SAMPLES 0       /* perf events handled (idle CPU excluded) */
#define STAT_RING_FULL 1     /* sample records lost: ring buffer full */
#define STAT_COPY_FAILED 2   /* no user stack bytes could be read at sp */
#define STAT_COUNTS_FULL 3   /* samples lost: counts map full */
#define STAT_USER_STACK_ERR 4 /* bpf_get_stackid failed for the user stack (full map, no user stack) */
#define STAT_KERNEL_STACK_ERR 5
#define STAT_LEN 8

/* One sample with its copied user stack (ring buffer record). Header fields are LOUPE_PROFILE_HEADER bytes. */
struct loupe_profile_sample {
	__u32 tgid;
	__u32 pid;
	__s32 kernel_stack_id; /* in stacks_<window>; negative: none */
	__s32 user_stack_id;   /* frame-pointer walk, in stacks_<window>; negative: none */
	__u64 ip;
	__u64 sp;
	__u64 bp;
	__u32 window;
	__u32 stack_len; /* bytes of `stack`, copied from sp upward */
	__u8 stack[LOUPE_PROFILE_STACK_MAX];
};

struct loupe_profile_key {
	__u32 tgid;
	__s32 user_stack_id;
	__s32 kernel_stack_id;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} control SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16384);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, LOUPE_PROFILE_MAX_DEPTH * sizeof(__u64));
} stacks_0 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_STACK_TRACE);
	__uint(max_entries, 16384);
	__uint(key_size, sizeof(__u32));
	__uint(value_size, LOUPE_PROFILE_MAX_DEPTH * sizeof(__u64));
} stacks_1 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct loupe_profile_key);
	__type(value, __u64);
} counts_0 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct loupe_profile_key);
	__type(value, __u64);
} counts_1 SEC(".maps");

/* A scratch sample per CPU (an array indexed by CPU: per-CPU maps cap values at 32 KiB). The loader sizes
 * it to the number of possible CPUs. A perf event program is never preempted on its CPU, so a slot has one
 * writer at a time. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct loupe_profile_sample);
} scratch SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 4 * 1024 * 1024);
} samples SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64[STAT_LEN]);
} profile_stats SEC(".maps");

static __always_inline void stat_add(__u32 index, __u64 n)
{
	__u32 zero = 0;
	__u64 *s = bpf_map_lookup_elem(&profile_stats, &zero);
	if (s && index < STAT_LEN)
		s[index] += n;
}

/* Copies as much of the user stack as is mapped, trying halving sizes: a read that crosses the end of the
 * stack mapping fails as a whole. Returns the bytes copied. */
static __always_inline __u32 copy_stack(__u8 *dst, __u64 sp)
{
	__u32 max = loupe_copy_stack;
#define TRY_COPY(n)                                                                                       \
	if (max >= (n) && bpf_probe_read_user(dst, (n), (void *)sp) == 0)                                \
		return (n);
	TRY_COPY(32768)
	TRY_COPY(16384)
	TRY_COPY(8192)
	TRY_COPY(4096)
	TRY_COPY(2048)
	TRY_COPY(1024)
	TRY_COPY(512)
#undef TRY_COPY
	return 0;
}

SEC("perf_event")
int loupe_profile(struct bpf_perf_event_data *ctx)
{
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u32 tgid = pid_tgid >> 32;
	__u32 pid = (__u32)pid_tgid;
	if (pid == 0)
		return 0; /* the idle task */
	if (loupe_profile_exclude_tgid && tgid == loupe_profile_exclude_tgid)
		return 0;
	if (loupe_profile_only_tgid && tgid != loupe_profile_only_tgid)
		return 0;
	stat_add(STAT_SAMPLES, 1);

	__u32 zero = 0;
	__u32 *w = bpf_map_lookup_elem(&control, &zero);
	__u32 window = (w && *w) ? 1 : 0;
	struct task_struct *task = bpf_get_current_task_btf();
	int kthread = task->mm == NULL;

	__s32 kid, uid;
	if (window) {
		kid = bpf_get_stackid(ctx, &stacks_1, 0);
		uid = kthread ? -1 : bpf_get_stackid(ctx, &stacks_1, BPF_F_USER_STACK);
	} else {
		kid = bpf_get_stackid(ctx, &stacks_0, 0);
		uid = kthread ? -1 : bpf_get_stackid(ctx, &stacks_0, BPF_F_USER_STACK);
	}
	/* A sample taken in user mode has no kernel stack: -EFAULT is expected then, not an error. */
	if (kid < 0 && kid != -14)
		stat_add(STAT_KERNEL_STACK_ERR, 1);
	if (!kthread && uid < 0)
		stat_add(STAT_USER_STACK_ERR, 1);

	if (loupe_copy_stack == 0) {
		struct loupe_profile_key key = {.tgid = tgid, .user_stack_id = uid, .kernel_stack_id = kid};
		void *counts = window ? (void *)&counts_1 : (void *)&counts_0;
		__u64 *count = bpf_map_lookup_elem(counts, &key);
		if (count) {
			__sync_fetch_and_add(count, 1);
		} else {
			__u64 one = 1;
			/* Another CPU may have inserted the key meanwhile: then add to its count. */
			if (bpf_map_update_elem(counts, &key, &one, BPF_NOEXIST) != 0) {
				count = bpf_map_lookup_elem(counts, &key);
				if (count)
					__sync_fetch_and_add(count, 1);
				else
					stat_add(STAT_COUNTS_FULL, 1);
			}
		}
		return 0;
	}

	__u32 cpu = bpf_get_smp_processor_id();
	struct loupe_profile_sample *s = bpf_map_lookup_elem(&scratch, &cpu);
	if (!s)
		return 0;
	s->tgid = tgid;
	s->pid = pid;
	s->kernel_stack_id = kid;
	s->user_stack_id = uid;
	s->window = window;
	s->ip = 0;
	s->sp = 0;
	s->bp = 0;
	s->stack_len = 0;
	if (!kthread) {
		if (ctx->regs.ip < LOUPE_USER_ADDR_END) {
			/* The sample interrupted user code: its registers are the sample's. */
			s->ip = ctx->regs.ip;
			s->sp = ctx->regs.sp;
			s->bp = ctx->regs.bp;
		} else {
			/* In the kernel: the user registers saved when the task entered it (the syscall's). */
			struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
			if (regs) {
				s->ip = regs->ip;
				s->sp = regs->sp;
				s->bp = regs->bp;
			}
		}
		if (s->sp) {
			s->stack_len = copy_stack(s->stack, s->sp);
			if (s->stack_len == 0)
				stat_add(STAT_COPY_FAILED, 1);
		}
	}
	__u64 len = LOUPE_PROFILE_HEADER + (__u64)s->stack_len;
	if (len > sizeof(*s))
		len = sizeof(*s);
	__u64 *st = bpf_map_lookup_elem(&profile_stats, &zero);
	__u64 flags = BPF_RB_NO_WAKEUP;
	if (st && loupe_profile_wake_every && st[STAT_SAMPLES] % loupe_profile_wake_every == 0)
		flags = BPF_RB_FORCE_WAKEUP;
	if (bpf_ringbuf_output(&samples, s, len, flags) != 0)
		stat_add(STAT_RING_FULL, 1);
	return 0;
}
