//! The registry of scalar `px.` functions: one declaration per function, which every consumer reads.
//!
//! Owns [`ScalarFunc`] (generated from the same declaration, so a function cannot exist in one table
//! and not the other), each function's signature, result type, result semantic type and doc line
//! ([`Function`], [`FUNCTIONS`]), and the reference page `docs/pxl-functions.md`
//! ([`reference_markdown`]). The checker types calls from it (`check::calls`); the engine lowers each
//! [`ScalarFunc`] in one exhaustive `match`, so adding a function is one entry here plus its lowering
//! there, and the compiler refuses a missing one. Must not know DataFusion or type-check anything
//! itself: the rules that read these declarations live in the checker.

use std::fmt::Write as _;

use crate::types::PxType;

/// What a parameter accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ParamType {
    /// A value of one of these types.
    OneOf(&'static [PxType]),
    /// A value of any type.
    Any,
    /// A list of constants of the type of parameter `n` (`equals_any`'s values).
    ConstantsLike(usize),
}

/// One parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Param {
    /// Its name, used in messages (`the key of px.pluck must be ...`) and the reference.
    pub name: &'static str,
    /// What it accepts.
    pub ty: ParamType,
    /// Whether it must be a constant (a regex pattern, a JSON key).
    pub constant: bool,
    /// The type the checker converts it to before the call (FLOAT64 for math on INT64).
    pub cast_to: Option<PxType>,
}

/// The result type of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Returns {
    /// Always this type.
    Fixed(PxType),
    /// The type of argument `n`.
    SameAs(usize),
    /// The common type of arguments `a` and `b` (INT64 with FLOAT64 is FLOAT64; both are converted).
    CommonOf(usize, usize),
    /// Computed by the function's [`Rule`]; the text says how.
    ByRule(&'static str),
}

/// The semantic type of the result (Pixie's `ST_*`, which drives how a UI shows a column).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Semantic {
    /// `ST_NONE`.
    None,
    /// The semantic type of argument `n` (a bin of a latency is still a duration).
    SameAs(usize),
}

/// How the checker turns a call into an expression, beyond the signature.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rule {
    /// A call of the function on the (converted) arguments.
    Call,
    /// A type conversion: folded when the argument is a constant.
    Conversion,
    /// `bin`: INT64 calls the function; TIME64NS bins its nanoseconds; FLOAT64 is `floor(x / size) * size`.
    Bin,
    /// `equals_any`: the second argument is a list of constants, each compared with the first.
    EqualsAny,
    /// `script_reference`: the third argument is a dict literal whose values may be columns.
    ScriptReference,
}

/// One scalar `px.` function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Function {
    /// The lowering key: the engine maps it to DataFusion.
    pub func: ScalarFunc,
    /// The name after `px.`.
    pub name: &'static str,
    /// Parameters, in order (all positional).
    pub params: &'static [Param],
    /// The result type.
    pub returns: Returns,
    /// The result's semantic type.
    pub semantic: Semantic,
    /// How the checker builds the call.
    pub rule: Rule,
    /// One line for the reference.
    pub doc: &'static str,
}

const fn p(name: &'static str, types: &'static [PxType]) -> Param {
    Param { name, ty: ParamType::OneOf(types), constant: false, cast_to: None }
}

const fn any(name: &'static str) -> Param {
    Param { name, ty: ParamType::Any, constant: false, cast_to: None }
}

const fn constant(name: &'static str, types: &'static [PxType]) -> Param {
    Param { name, ty: ParamType::OneOf(types), constant: true, cast_to: None }
}

/// A number, converted to FLOAT64 for the call.
const fn float(name: &'static str) -> Param {
    Param { name, ty: ParamType::OneOf(NUMBER), constant: false, cast_to: Some(PxType::Float64) }
}

const B: PxType = PxType::Boolean;
const F: PxType = PxType::Float64;
const I: PxType = PxType::Int64;
const S: PxType = PxType::String;
const T: PxType = PxType::Time;
const BOOL: &[PxType] = &[B];
const STR: &[PxType] = &[S];
const INT: &[PxType] = &[I];
const TIME: &[PxType] = &[T];
const NUMBER: &[PxType] = &[I, F];

/// Declares every function once: the [`ScalarFunc`] variants and [`FUNCTIONS`] come from this list,
/// in this order, so `FUNCTIONS[f as usize].func == f`.
macro_rules! functions {
    ($($variant:ident $name:literal ($($param:expr),*) -> $returns:expr, $semantic:expr, $rule:expr, $doc:literal;)+) => {
        /// Scalar `px.` functions: the key by which the engine lowers each one. Declared with its
        /// signature in [`FUNCTIONS`].
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum ScalarFunc {
            $(#[doc = concat!("`px.", $name, "`: ", $doc)] $variant,)+
        }

        /// Every scalar function, in declaration order (`FUNCTIONS[f as usize]` is `f`'s entry).
        pub static FUNCTIONS: &[Function] = &[
            $(Function {
                func: ScalarFunc::$variant,
                name: $name,
                params: &[$($param),*],
                returns: $returns,
                semantic: $semantic,
                rule: $rule,
                doc: $doc,
            },)+
        ];
    };
}

functions! {
    Select "select"(p("cond", BOOL), any("a"), any("b")) -> Returns::CommonOf(1, 2), Semantic::SameAs(1), Rule::Call,
        "`a` where `cond` is true, else `b`";
    Bin "bin"(p("x", &[I, F, T]), p("size", NUMBER))
        -> Returns::ByRule("the type of `x`; FLOAT64 when either is FLOAT64"), Semantic::SameAs(0), Rule::Bin,
        "`x` rounded down to a multiple of `size` (time bins take a size in ns)";
    Contains "contains"(p("s", STR), p("sub", STR)) -> Returns::Fixed(B), Semantic::None, Rule::Call,
        "whether `s` contains `sub`";
    Find "find"(p("s", STR), p("sub", STR)) -> Returns::Fixed(I), Semantic::None, Rule::Call,
        "the byte index of `sub` in `s` from 0, or -1";
    Length "length"(p("s", STR)) -> Returns::Fixed(I), Semantic::None, Rule::Call,
        "the length of `s` in bytes";
    ToLower "tolower"(p("s", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "`s` in lower case";
    ToUpper "toupper"(p("s", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "`s` in upper case";
    Trim "trim"(p("s", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "`s` without leading and trailing whitespace";
    Substring "substring"(p("s", STR), p("pos", INT), p("len", INT)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "`len` chars of `s` from char `pos` (from 0)";
    RegexMatch "regex_match"(constant("pattern", STR), p("s", STR)) -> Returns::Fixed(B), Semantic::None, Rule::Call,
        "whether the whole of `s` matches `pattern`";
    Abs "abs"(p("x", NUMBER)) -> Returns::SameAs(0), Semantic::SameAs(0), Rule::Call,
        "the absolute value of `x`";
    Floor "floor"(float("x")) -> Returns::Fixed(F), Semantic::None, Rule::Call,
        "the largest integer not above `x`";
    Ceil "ceil"(float("x")) -> Returns::Fixed(F), Semantic::None, Rule::Call,
        "the smallest integer not below `x`";
    Round "round"(float("x")) -> Returns::Fixed(F), Semantic::None, Rule::Call,
        "`x` rounded to the nearest integer, halves away from zero";
    Sqrt "sqrt"(float("x")) -> Returns::Fixed(F), Semantic::None, Rule::Call,
        "the square root of `x`";
    Exp "exp"(float("x")) -> Returns::Fixed(F), Semantic::None, Rule::Call,
        "e to the power `x`";
    Ln "ln"(float("x")) -> Returns::Fixed(F), Semantic::None, Rule::Call,
        "the natural logarithm of `x`";
    Log2 "log2"(float("x")) -> Returns::Fixed(F), Semantic::None, Rule::Call,
        "the base-2 logarithm of `x`";
    Log10 "log10"(float("x")) -> Returns::Fixed(F), Semantic::None, Rule::Call,
        "the base-10 logarithm of `x`";
    Pow "pow"(float("x"), float("y")) -> Returns::Fixed(F), Semantic::None, Rule::Call,
        "`x` to the power `y`";
    Pluck "pluck"(p("json", STR), constant("key", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the value at `key` of a JSON object, as text (null when absent)";
    PluckInt64 "pluck_int64"(p("json", STR), constant("key", STR)) -> Returns::Fixed(I), Semantic::None, Rule::Call,
        "the value at `key` of a JSON object, as an integer (null when absent)";
    PluckFloat64 "pluck_float64"(p("json", STR), constant("key", STR)) -> Returns::Fixed(F), Semantic::None,
        Rule::Call, "the value at `key` of a JSON object, as a float (null when absent)";
    EqualsAny "equals_any"(any("x"), Param { name: "values", ty: ParamType::ConstantsLike(0), constant: true, cast_to: None })
        -> Returns::Fixed(B), Semantic::None, Rule::EqualsAny,
        "whether `x` equals one of the constants in `values`";
    Int64ToTime "int64_to_time"(p("ns", INT)) -> Returns::Fixed(T), Semantic::None, Rule::Conversion,
        "nanoseconds since the Unix epoch as a time";
    Strptime "strptime"(p("s", STR), p("fmt", STR)) -> Returns::Fixed(T), Semantic::None, Rule::Call,
        "the time `s` names in the format `fmt` (C strptime specifiers: `%Y-%m-%d %H:%M:%S`, `%z`, `%b`, ...; UTC when `fmt` has no zone; null when `s` does not match)";
    TimeToInt64 "time_to_int64"(p("t", TIME)) -> Returns::Fixed(I), Semantic::None, Rule::Conversion,
        "a time as nanoseconds since the Unix epoch";
    Concat "_concat"(p("a", STR), p("b", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "`a` followed by `b` (what `a + b` on strings becomes)";
    ScriptReference "script_reference"(any("label"), constant("script", STR))
        -> Returns::Fixed(S), Semantic::None, Rule::ScriptReference,
        "a link cell to `script`, with an optional third argument: a dict of its arguments (values may be columns); JSON `{\"label\",\"script\",\"args\"}` (ST_SCRIPT_REFERENCE)";
    UpidToCmdline "upid_to_cmdline"(p("upid", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the command line of the UPID's process, read from this host's /proc when the query runs; once it exited, the one the agent saw while it ran ('' if none)";
    Replace "replace"(constant("pattern", STR), p("s", STR), p("sub", STR)) -> Returns::Fixed(S), Semantic::None,
        Rule::Call, "`s` with every match of regex `pattern` replaced by `sub` (`\\1` names a group)";
    PodNameToStartTime "pod_name_to_start_time"(p("name", STR)) -> Returns::Fixed(T), Semantic::None, Rule::Call,
        "when pod `namespace/name` was created (the epoch, 0, when unknown)";
    PodNameToStatus "pod_name_to_status"(p("name", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the status of pod `namespace/name` as JSON `{\"phase\",\"message\",\"reason\",\"ready\"}` (phase `Terminated` once deleted; '' when unknown)";
    Negate "negate"(p("x", NUMBER)) -> Returns::SameAs(0), Semantic::SameAs(0), Rule::Call,
        "`-x`";
    ExecHostNumCpus "_exec_host_num_cpus"() -> Returns::Fixed(I), Semantic::None, Rule::Call,
        "the number of CPUs of the host the query runs on";
    PluckArray "pluck_array"(p("json", STR), constant("index", INT)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "item `index` (from 0) of a JSON array, as text (null when absent)";
    UpidToPid "upid_to_pid"(p("upid", STR)) -> Returns::Fixed(I), Semantic::None, Rule::Call,
        "the process id of a UPID (`asid:pid:start`)";
    UpidToAsid "upid_to_asid"(p("upid", STR)) -> Returns::Fixed(I), Semantic::None, Rule::Call,
        "the agent short id of a UPID (`asid:pid:start`)";
    ExecHostname "_exec_hostname"() -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the name of the host the query runs on";
    UpidToHostname "upid_to_hostname"(p("upid", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the host of a UPID: the agent's host name (one node holds only its own processes)";
    UpidToNodeName "upid_to_node_name"(p("upid", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the node of a UPID: the agent's host name (one node holds only its own processes)";
    UpidToPodName "upid_to_pod_name"(p("upid", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "Kubernetes metadata of the UPID's process, from its cgroup (containerd, CRI-O, Docker) and the vizier's metadata service at the time of the row (a pod deleted since is remembered): its pod, `namespace/name` ('' for a process outside any pod, or without a metadata service)";
    UpidToPodId "upid_to_pod_id"(p("upid", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "Kubernetes metadata of the UPID's process, from its cgroup (containerd, CRI-O, Docker) and the vizier's metadata service at the time of the row (a pod deleted since is remembered): its pod's UID ('' for a process outside any pod, or without a metadata service)";
    UpidToNamespace "upid_to_namespace"(p("upid", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "Kubernetes metadata of the UPID's process, from its cgroup (containerd, CRI-O, Docker) and the vizier's metadata service at the time of the row (a pod deleted since is remembered): its pod's namespace ('' for a process outside any pod, or without a metadata service)";
    UpidToServiceName "upid_to_service_name"(p("upid", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "Kubernetes metadata of the UPID's process, from its cgroup (containerd, CRI-O, Docker) and the vizier's metadata service at the time of the row (a pod deleted since is remembered): the services in front of its pod (their endpoints name it), `namespace/name`, a JSON list when several ('' for a process outside any pod, or without a metadata service)";
    UpidToServiceId "upid_to_service_id"(p("upid", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "Kubernetes metadata of the UPID's process, from its cgroup (containerd, CRI-O, Docker) and the vizier's metadata service at the time of the row (a pod deleted since is remembered): the UIDs of the services in front of its pod, a JSON list when several ('' for a process outside any pod, or without a metadata service)";
    UpidToContainerName "upid_to_container_name"(p("upid", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "Kubernetes metadata of the UPID's process, from its cgroup (containerd, CRI-O, Docker) and the vizier's metadata service at the time of the row (a pod deleted since is remembered): its container's name in the pod spec ('' for a process outside any pod, or without a metadata service)";
    UpidToContainerId "upid_to_container_id"(p("upid", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the id of the UPID's container, read from its cgroup (containerd, CRI-O, Docker; also outside Kubernetes; '' for a host process)";
    UpidToDeploymentName "upid_to_deployment_name"(p("upid", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "Kubernetes metadata of the UPID's process, from its cgroup (containerd, CRI-O, Docker) and the vizier's metadata service at the time of the row (a pod deleted since is remembered): the deployment owning its pod's replica set, `namespace/name` ('' for a process outside any pod, or without a metadata service)";
    UpidToDeploymentId "upid_to_deployment_id"(p("upid", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "Kubernetes metadata of the UPID's process, from its cgroup (containerd, CRI-O, Docker) and the vizier's metadata service at the time of the row (a pod deleted since is remembered): the UID of the deployment owning its pod ('' for a process outside any pod, or without a metadata service)";
    UpidToReplicasetName "upid_to_replicaset_name"(p("upid", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "Kubernetes metadata of the UPID's process, from its cgroup (containerd, CRI-O, Docker) and the vizier's metadata service at the time of the row (a pod deleted since is remembered): the replica set owning its pod, `namespace/name` ('' for a process outside any pod, or without a metadata service)";
    UpidToReplicasetId "upid_to_replicaset_id"(p("upid", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "Kubernetes metadata of the UPID's process, from its cgroup (containerd, CRI-O, Docker) and the vizier's metadata service at the time of the row (a pod deleted since is remembered): the UID of the replica set owning its pod ('' for a process outside any pod, or without a metadata service)";
    IpToPodId "ip_to_pod_id"(p("ip", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the UID of the pod holding IP `ip` (the live one, else the last that held it; host-network pods are not indexed; '' when none)";
    IpToServiceId "ip_to_service_id"(p("ip", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the UID of the service with cluster IP `ip`, else of the services of the pod holding `ip` ('' when none)";
    PodIdToPodName "pod_id_to_pod_name"(p("id", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the pod with UID `id` as `namespace/name` (deleted pods are remembered a while; '' when unknown)";
    PodIdToNamespace "pod_id_to_namespace"(p("id", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the namespace of the pod with UID `id` ('' when unknown)";
    PodIdToServiceName "pod_id_to_service_name"(p("id", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the services in front of the pod with UID `id`, `namespace/name`, a JSON list when several ('' when none)";
    PodIdToNodeName "pod_id_to_node_name"(p("id", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the node the pod with UID `id` is scheduled on ('' when unknown)";
    PodNameToPodId "pod_name_to_pod_id"(p("name", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the UID of pod `namespace/name` (the live one, else the last deleted; '' when unknown)";
    PodNameToServiceName "pod_name_to_service_name"(p("name", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the services in front of pod `namespace/name`, a JSON list when several ('' when none)";
    PodNameToNamespace "pod_name_to_namespace"(p("name", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the namespace of pod `namespace/name` ('' when unknown)";
    PodNameToPodIp "pod_name_to_pod_ip"(p("name", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the IP of pod `namespace/name` ('' when unknown)";
    ServiceIdToServiceName "service_id_to_service_name"(p("id", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the service with UID `id` as `namespace/name` ('' when unknown)";
    ServiceNameToServiceId "service_name_to_service_id"(p("name", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the UID of service `namespace/name` ('' when unknown)";
    ServiceNameToNamespace "service_name_to_namespace"(p("name", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the namespace of service `namespace/name` ('' when unknown)";
    UpidToPodStatus "upid_to_pod_status"(p("upid", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "Kubernetes metadata of the UPID's process, from its cgroup (containerd, CRI-O, Docker) and the vizier's metadata service at the time of the row (a pod deleted since is remembered): its pod's status, JSON `{\"phase\",\"message\",\"reason\",\"ready\"}` ('' for a process outside any pod, or without a metadata service)";
    PodNameToOwnerReferences "pod_name_to_owner_references"(p("name", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the owner references of pod `namespace/name`, a JSON list of `{\"kind\",\"name\",\"uid\"}` ('' when unknown)";
    PodIdToOwnerReferences "pod_id_to_owner_references"(p("id", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the owner references of the pod with UID `id`, a JSON list of `{\"kind\",\"name\",\"uid\"}` ('' when unknown)";
    PodNameToServiceId "pod_name_to_service_id"(p("name", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the UIDs of the services in front of pod `namespace/name`, a JSON list when several ('' when none)";
    PodNameToDeploymentName "pod_name_to_deployment_name"(p("name", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the deployment owning pod `namespace/name`, `namespace/name` ('' when none)";
    PodNameToDeploymentId "pod_name_to_deployment_id"(p("name", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the UID of the deployment owning pod `namespace/name` ('' when none)";
    PodNameToReplicasetName "pod_name_to_replicaset_name"(p("name", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the replica set owning pod `namespace/name`, `namespace/name` ('' when none)";
    PodNameToReplicasetId "pod_name_to_replicaset_id"(p("name", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the UID of the replica set owning pod `namespace/name` ('' when none)";
    PodIdToServiceId "pod_id_to_service_id"(p("id", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the UIDs of the services in front of the pod with UID `id`, a JSON list when several ('' when none)";
    PodIdToDeploymentName "pod_id_to_deployment_name"(p("id", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the deployment owning the pod with UID `id`, `namespace/name` ('' when none)";
    PodIdToDeploymentId "pod_id_to_deployment_id"(p("id", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the UID of the deployment owning the pod with UID `id` ('' when none)";
    PodIdToReplicasetName "pod_id_to_replicaset_name"(p("id", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the replica set owning the pod with UID `id`, `namespace/name` ('' when none)";
    PodIdToReplicasetId "pod_id_to_replicaset_id"(p("id", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the UID of the replica set owning the pod with UID `id` ('' when none)";
    PodIdToPodLabels "pod_id_to_pod_labels"(p("id", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the labels of the pod with UID `id`, a JSON object ('' when unknown)";
    HasServiceName "has_service_name"(p("services", STR), p("name", STR)) -> Returns::Fixed(B), Semantic::None,
        Rule::Call, "whether `services` (one `namespace/name` or a JSON list of them, as `upid_to_service_name` answers) names service `name`";
    ProtocolName "protocol_name"(p("protocol", INT)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the name of a protocol number of `conn_stats.protocol` (`HTTP`, `MySQL`, ...; `Invalid (n)` when unknown)";
    HttpRespMessage "http_resp_message"(p("code", INT)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the reason phrase of an HTTP status code (`Not Found`; '' when unknown)";
    KafkaApiKeyName "kafka_api_key_name"(p("api_key", INT)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the name of a Kafka API key (`Produce`, `Fetch`, ...; the number as text when unknown)";
    MysqlCommandName "mysql_command_name"(p("cmd", INT)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the name of a MySQL command byte (`Query`, `StmtExecute`, ...; the number as text when unknown)";
    CqlOpcodeName "cql_opcode_name"(p("opcode", INT)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the name of a Cassandra CQL opcode (`Query`, `Result`, ...; the number as text when unknown)";
    AmqpFrameTypeName "amqp_frame_type_name"(p("frame_type", INT)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the name of an AMQP frame type (`Frame method`, `Heartbeat`, ...; the number as text when unknown)";
    AmqpMethodName "amqp_method_name"(p("class_id", INT), p("method_id", INT)) -> Returns::Fixed(S), Semantic::None,
        Rule::Call, "the name of an AMQP method (`BasicPublish`; the class name for method 0; `Unknown` otherwise)";
    MuxFrameTypeName "mux_frame_type_name"(p("frame_type", INT)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the name of a Mux frame type (`Tdispatch`, `Rerr`, ...; `Unknown (n)` otherwise)";
    DnsRcodeName "dns_rcode_name"(p("rcode", INT)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the name of a DNS response code (`NOERROR`, `NXDOMAIN`, ...; the number as text when unknown)";
    Atoi "atoi"(p("s", STR), p("default", INT)) -> Returns::Fixed(I), Semantic::None, Rule::Call,
        "`s` parsed as a 64-bit integer (surrounding spaces allowed), else `default`";
    Itoa "itoa"(p("i", INT)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "`i` as decimal text";
    Split "split"(p("s", STR), constant("delimiter", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "`s` split at each `delimiter`, as a JSON array of strings (read items with `px.pluck_array`)";
    Nslookup "nslookup"(p("addr", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the host name of an IP address by reverse DNS (cached; the address itself when it has no name or the lookup budget of the call is spent)";
    NormalizePgsql "normalize_pgsql"(p("sql", STR), p("cmd", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "a PostgreSQL request (`cmd` `Query`, or `Execute` with `query=[..] params=[..]`) with constants replaced by `$n`: JSON `{\"query\",\"params\"}`, or `{\"error\"}`";
    NormalizeMysql "normalize_mysql"(p("sql", STR), p("cmd", INT)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "a MySQL request (`cmd` 3 Query, or 23 StmtExecute with `query=[..] params=[..]`) with constants replaced by `?`: JSON `{\"query\",\"params\"}`, or `{\"error\"}`";
    ContainerIdToStatus "container_id_to_status"(p("id", STR)) -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the state of container `id` from its pod's status, JSON `{\"state\",\"message\",\"reason\"}` (`state` `Running`, `Waiting`, `Terminated`; `Unknown` for a container not known)";
    MatchEndpoint "_match_endpoint"(p("request_path", STR), p("endpoint", STR)) -> Returns::Fixed(B), Semantic::None,
        Rule::Call,
        "whether `request_path` (its query string left out) has the components of `endpoint`, where a `*` component matches any one (`/users/42` matches `/users/*`, not `/users/*/posts`)";
    PredictRequestPathCluster "_predict_request_path_cluster"(p("request_path", STR), p("clustering", STR))
        -> Returns::Fixed(S), Semantic::None, Rule::Call,
        "the endpoint of `request_path` in `clustering`, the JSON `px._build_request_path_clusters` aggregates: its cluster's template (`/users/*`) once the cluster has more than 5 distinct paths, else the path itself";
}

impl ScalarFunc {
    /// This function's declaration.
    pub fn spec(self) -> &'static Function {
        &FUNCTIONS[self as usize]
    }

    /// The function called `px.<name>`.
    pub fn from_name(name: &str) -> Option<ScalarFunc> {
        FUNCTIONS.iter().find(|f| f.name == name).map(|f| f.func)
    }
}

impl ParamType {
    fn describe(self) -> String {
        match self {
            ParamType::OneOf(types) => types.iter().map(|t| t.name()).collect::<Vec<_>>().join("/"),
            ParamType::Any => "any".into(),
            ParamType::ConstantsLike(n) => format!("list of constants like argument {}", n + 1),
        }
    }
}

impl Function {
    /// `px.bin(x INT64/FLOAT64/TIME64NS, size INT64/FLOAT64)`.
    pub fn signature(&self) -> String {
        let params: Vec<String> = self
            .params
            .iter()
            .map(|p| {
                let constant =
                    if p.constant && !matches!(p.ty, ParamType::ConstantsLike(_)) { " constant" } else { "" };
                format!("{} {}{constant}", p.name, p.ty.describe())
            })
            .collect();
        format!("px.{}({})", self.name, params.join(", "))
    }

    /// The result type, as the reference shows it.
    pub fn returns_text(&self) -> String {
        let arg = |n: usize| self.params.get(n).map_or("?", |p| p.name);
        match self.returns {
            Returns::Fixed(t) => t.name().to_string(),
            Returns::SameAs(n) => format!("the type of `{}`", arg(n)),
            Returns::CommonOf(a, b) => format!("the common type of `{}` and `{}`", arg(a), arg(b)),
            Returns::ByRule(text) => text.to_string(),
        }
    }

    /// The result's semantic type, as the reference shows it.
    pub fn semantic_text(&self) -> String {
        match self.semantic {
            Semantic::None => "ST_NONE".into(),
            Semantic::SameAs(n) => format!("that of `{}`", self.params.get(n).map_or("?", |p| p.name)),
        }
    }
}

/// The reference page `docs/pxl-functions.md`, generated from [`FUNCTIONS`].
pub fn reference_markdown() -> String {
    let mut out = String::from(
        "# PxL scalar functions\n\nGenerated from the registry in `crates/pxl/src/functions.rs` (`cargo test -p loupe-pxl` \
         checks it; `LOUPE_BLESS=1 cargo test -p loupe-pxl` rewrites it). Arguments are positional. A number \
         parameter takes INT64 or FLOAT64; where a result is FLOAT64, INT64 arguments are converted.\n\n\
         | function | returns | semantic type | what it does |\n|---|---|---|---|\n",
    );
    for f in FUNCTIONS {
        let _ = writeln!(out, "| `{}` | {} | {} | {} |", f.signature(), f.returns_text(), f.semantic_text(), f.doc);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_entry_sits_at_its_own_index_and_names_are_unique() {
        for (i, f) in FUNCTIONS.iter().enumerate() {
            assert_eq!(f.func as usize, i, "{}", f.name);
            assert_eq!(ScalarFunc::from_name(f.name), Some(f.func));
            assert_eq!(f.func.spec().name, f.name);
        }
        assert_eq!(FUNCTIONS.len(), 98);
        assert_eq!(ScalarFunc::from_name("nope"), None);
    }

    #[test]
    fn every_argument_index_a_declaration_names_exists() {
        for f in FUNCTIONS {
            let n = f.params.len();
            let ok = match f.returns {
                Returns::SameAs(a) => a < n,
                Returns::CommonOf(a, b) => a < n && b < n,
                Returns::Fixed(_) | Returns::ByRule(_) => true,
            };
            assert!(ok, "{}: returns names a missing argument", f.name);
            assert!(!matches!(f.semantic, Semantic::SameAs(a) if a >= n), "{}: semantic", f.name);
            for p in f.params {
                assert!(!matches!(p.ty, ParamType::ConstantsLike(a) if a >= n), "{}: {}", f.name, p.name);
            }
        }
    }

    #[test]
    fn only_rules_compute_their_own_type() {
        for f in FUNCTIONS {
            let by_rule = matches!(f.returns, Returns::ByRule(_));
            assert_eq!(by_rule, f.rule == Rule::Bin, "{}", f.name);
            assert_eq!(f.rule == Rule::EqualsAny, f.params.iter().any(|p| matches!(p.ty, ParamType::ConstantsLike(_))));
        }
    }

    #[test]
    fn signatures_read_like_the_reference() {
        assert_eq!(ScalarFunc::Bin.spec().signature(), "px.bin(x INT64/FLOAT64/TIME64NS, size INT64/FLOAT64)");
        assert_eq!(ScalarFunc::Pluck.spec().signature(), "px.pluck(json STRING, key STRING constant)");
        assert_eq!(
            ScalarFunc::EqualsAny.spec().signature(),
            "px.equals_any(x any, values list of constants like argument 1)"
        );
        assert_eq!(ScalarFunc::Select.spec().returns_text(), "the common type of `a` and `b`");
    }

    /// `docs/pxl-functions.md` is what the registry says; `LOUPE_BLESS=1` rewrites it.
    #[test]
    fn functions_doc_is_current() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/pxl-functions.md");
        let want = reference_markdown();
        if std::env::var_os("LOUPE_BLESS").is_some() {
            std::fs::write(&path, &want).expect("write docs/pxl-functions.md");
        }
        let have = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            have == want,
            "docs/pxl-functions.md is stale: run `LOUPE_BLESS=1 cargo test -p loupe-pxl` and commit it"
        );
    }
}
