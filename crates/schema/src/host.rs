//! The host tables (Pixie's names and columns): process and network counters, JVM stats, CPU profiles, exits,
//! TCP stats, the collector's own error tables and the agent's counters (`agent_stats`, which the collector fills).
//! The others stay empty until a source fills them, but are declared now so that a script naming any of them
//! compiles and returns no rows.

/// Name of the per-process counters table.
pub const PROCESS_STATS: &str = "process_stats";
/// Name of the per-namespace network counters table.
pub const NETWORK_STATS: &str = "network_stats";
/// Name of the process exits table.
pub const PROC_EXIT_EVENTS: &str = "proc_exit_events";
/// Name of the TCP retransmits and resets table.
pub const TCP_STATS_EVENTS: &str = "tcp_stats_events";

crate::table! {
    /// `process_stats`: per-process CPU, memory, fault and I/O counters from /proc.
    process_stats = "process_stats", "per-process CPU, memory and I/O counters", ProcessStatsRow, ProcessStatsBuilder {
        time_ns: Time = "time_", "ST_NONE", "time of the sample";
        upid: Upid = "upid", "ST_UPID", "the process";
        major_faults: I64 = "major_faults", "ST_NONE", "major page faults (counter)";
        minor_faults: I64 = "minor_faults", "ST_NONE", "minor page faults (counter)";
        cpu_utime_ns: I64 = "cpu_utime_ns", "ST_DURATION_NS", "user CPU time (counter)";
        cpu_ktime_ns: I64 = "cpu_ktime_ns", "ST_DURATION_NS", "kernel CPU time (counter)";
        num_threads: I64 = "num_threads", "ST_NONE", "threads now";
        vsize_bytes: I64 = "vsize_bytes", "ST_BYTES", "virtual memory size";
        rss_bytes: I64 = "rss_bytes", "ST_BYTES", "resident memory";
        rchar_bytes: I64 = "rchar_bytes", "ST_BYTES", "bytes read by syscalls (counter)";
        wchar_bytes: I64 = "wchar_bytes", "ST_BYTES", "bytes written by syscalls (counter)";
        read_bytes: I64 = "read_bytes", "ST_BYTES", "bytes read from storage (counter)";
        write_bytes: I64 = "write_bytes", "ST_BYTES", "bytes written to storage (counter)";
    }
}

/// Name of the agent's counters table.
pub const AGENT_STATS: &str = "agent_stats";

crate::table! {
    /// `agent_stats`: the agent's own counters, so that what it traced, dropped and why is queryable with PxL
    /// (`px.DataFrame('agent_stats')`). One row per counter and cause at each sample; values are totals since
    /// the agent started.
    agent_stats = "agent_stats", "the agent's own counters: events traced, dropped and why", AgentStatsRow, AgentStatsBuilder {
        time_ns: Time = "time_", "ST_NONE", "time of the sample";
        upid: Upid = "upid", "ST_UPID", "the agent process";
        counter: Str = "counter", "ST_NONE", "what is counted, e.g. `kernel_records_dropped`";
        cause: Str = "cause", "ST_NONE", "why, e.g. `ring_full`";
        value: I64 = "value", "ST_NONE", "total since the agent started (counter)";
    }
}

crate::table! {
    /// `network_stats`: per-pod (or per network namespace) interface counters, summed over the interfaces
    /// other than `lo`.
    network_stats = "network_stats", "network interface counters per pod or network namespace (`lo` left out)", NetworkStatsRow, NetworkStatsBuilder {
        time_ns: Time = "time_", "ST_NONE", "time of the sample";
        pod_id: Str = "pod_id", "ST_NONE", "pod (or network namespace on a bare host)";
        rx_bytes: I64 = "rx_bytes", "ST_BYTES", "bytes received (counter)";
        rx_packets: I64 = "rx_packets", "ST_NONE", "packets received (counter)";
        rx_errors: I64 = "rx_errors", "ST_NONE", "receive errors (counter)";
        rx_drops: I64 = "rx_drops", "ST_NONE", "receive drops (counter)";
        tx_bytes: I64 = "tx_bytes", "ST_BYTES", "bytes sent (counter)";
        tx_packets: I64 = "tx_packets", "ST_NONE", "packets sent (counter)";
        tx_errors: I64 = "tx_errors", "ST_NONE", "send errors (counter)";
        tx_drops: I64 = "tx_drops", "ST_NONE", "send drops (counter)";
        netns: I64 = "netns", "ST_NONE", "inode of the network namespace (Loupe's; tells namespaces apart on a bare host)";
    }
}

crate::table! {
    /// `jvm_stats`: garbage collection and heap figures of JVM processes.
    jvm_stats = "jvm_stats", "JVM garbage collection and heap figures", JvmStatsRow, JvmStatsBuilder {
        time_ns: Time = "time_", "ST_NONE", "time of the sample";
        upid: Upid = "upid", "ST_UPID", "the JVM process";
        young_gc_time: I64 = "young_gc_time", "ST_DURATION_NS", "young-generation GC time (counter)";
        full_gc_time: I64 = "full_gc_time", "ST_DURATION_NS", "full GC time (counter)";
        used_heap_size: I64 = "used_heap_size", "ST_BYTES", "heap in use";
        total_heap_size: I64 = "total_heap_size", "ST_BYTES", "heap committed";
        max_heap_size: I64 = "max_heap_size", "ST_BYTES", "heap limit";
    }
}

crate::table! {
    /// `stack_traces.beta`: CPU profile samples, one row per distinct stack per window.
    stack_traces = "stack_traces.beta", "CPU profile: sampled stacks and their counts", StackTraceRow, StackTracesBuilder {
        time_ns: Time = "time_", "ST_NONE", "end of the sampling window";
        upid: Upid = "upid", "ST_UPID", "the sampled process";
        stack_trace_id: I64 = "stack_trace_id", "ST_NONE", "id of the stack (a hash of `stack_trace`: the same in every window)";
        stack_trace: Str = "stack_trace", "ST_NONE", "folded frames, root first, joined by `;` (kernel frames end in `_[k]`; `[unknown]` where a frame has no name)";
        count: I64 = "count", "ST_NONE", "samples of this stack in the window";
    }
}

crate::table! {
    /// `proc_exit_events`: processes that exited, with their code or signal.
    proc_exit_events = "proc_exit_events", "process exits", ProcExitEventRow, ProcExitEventsBuilder {
        time_ns: Time = "time_", "ST_NONE", "time of the exit";
        upid: Upid = "upid", "ST_UPID", "the process";
        exit_code: I64 = "exit_code", "ST_NONE", "exit code";
        signal: I64 = "signal", "ST_NONE", "terminating signal, 0 if none";
        comm: Str = "comm", "ST_NONE", "command name";
    }
}

crate::table! {
    /// `tcp_stats_events`: per-connection TCP retransmits and resets from the `tcp:*` tracepoints, one row per
    /// connection and report window that saw any. `upid` is the process the kernel ran the event in (the
    /// socket's owner for resets met in a syscall; often another process, or none, for timer-driven
    /// retransmits). `tx`/`rx` stay 0: Pixie fills them from kprobes this kernel lacks.
    tcp_stats_events = "tcp_stats_events", "TCP retransmits and resets per connection", TcpStatsEventRow, TcpStatsEventsBuilder {
        time_ns: Time = "time_", "ST_NONE", "end of the report window";
        upid: Upid = "upid", "ST_UPID", "process the kernel ran the event in (the socket's owner when in its syscall; pid 0: none)";
        local_addr: Str = "local_addr", "ST_IP_ADDRESS", "own IP address";
        local_port: I64 = "local_port", "ST_PORT", "own port";
        remote_addr: Str = "remote_addr", "ST_IP_ADDRESS", "peer IP address";
        remote_port: I64 = "remote_port", "ST_PORT", "peer port";
        tx: I64 = "tx", "ST_BYTES", "bytes sent (counter; 0: not traced yet)";
        rx: I64 = "rx", "ST_BYTES", "bytes received (counter; 0: not traced yet)";
        retransmits: I64 = "retransmits", "ST_NONE", "segments retransmitted since the previous row of this connection";
        resets_sent: I64 = "resets_sent", "ST_NONE", "RSTs sent since the previous row of this connection (Loupe's)";
        resets_received: I64 = "resets_received", "ST_NONE", "RSTs received since the previous row of this connection (Loupe's)";
    }
}

crate::table! {
    /// `stirling_error`: the collector's status reports per source.
    stirling_error = "stirling_error", "collector status per source", StirlingErrorRow, StirlingErrorBuilder {
        time_ns: Time = "time_", "ST_NONE", "time of the report";
        upid: Upid = "upid", "ST_UPID", "the agent";
        source_connector: Str = "source_connector", "ST_NONE", "source";
        status: I64 = "status", "ST_NONE", "status code";
        error: Str = "error", "ST_NONE", "error text";
        context: Str = "context", "ST_NONE", "context";
    }
}

crate::table! {
    /// `probe_status`: which probes each source attached, and why not.
    probe_status = "probe_status", "probe attach status per source", ProbeStatusRow, ProbeStatusBuilder {
        time_ns: Time = "time_", "ST_NONE", "time of the report";
        upid: Upid = "upid", "ST_UPID", "the agent";
        source_connector: Str = "source_connector", "ST_NONE", "source";
        tracepoint: Str = "tracepoint", "ST_NONE", "probe";
        status: I64 = "status", "ST_NONE", "status code";
        error: Str = "error", "ST_NONE", "error text";
        info: Str = "info", "ST_NONE", "details as JSON";
    }
}
