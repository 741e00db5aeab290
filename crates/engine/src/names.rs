//! Names of protocol codes: what `px.kafka_api_key_name`, `px.cql_opcode_name`, `px.amqp_method_name`,
//! `px.mux_frame_type_name`, `px.dns_rcode_name`, `px.mysql_command_name`, `px.protocol_name` and
//! `px.http_resp_message` answer, from each protocol's specification (Pixie's spellings, so scripts that
//! compare names keep working).
//!
//! Owns the tables only: pure functions of a code. Must not know Arrow or DataFusion (`udf` wraps them).

/// A Kafka request's API key (Kafka protocol guide, "api keys"); the number as text when unknown.
pub(crate) fn kafka_api_key(key: i64) -> String {
    const NAMES: [&str; 52] = [
        "Produce",
        "Fetch",
        "ListOffsets",
        "Metadata",
        "LeaderAndIsr",
        "StopReplica",
        "UpdateMetadata",
        "ControlledShutdown",
        "OffsetCommit",
        "OffsetFetch",
        "FindCoordinator",
        "JoinGroup",
        "Heartbeat",
        "LeaveGroup",
        "SyncGroup",
        "DescribeGroups",
        "ListGroups",
        "SaslHandshake",
        "ApiVersions",
        "CreateTopics",
        "DeleteTopics",
        "DeleteRecords",
        "InitProducerId",
        "OffsetForLeaderEpoch",
        "AddPartitionsToTxn",
        "AddOffsetsToTxn",
        "EndTxn",
        "WriteTxnMarkers",
        "TxnOffsetCommit",
        "DescribeAcls",
        "CreateAcls",
        "DeleteAcls",
        "DescribeConfigs",
        "AlterConfigs",
        "AlterReplicaLogDirs",
        "DescribeLogDirs",
        "SaslAuthenticate",
        "CreatePartitions",
        "CreateDelegationToken",
        "RenewDelegationToken",
        "ExpireDelegationToken",
        "DescribeDelegationToken",
        "DeleteGroups",
        "ElectLeaders",
        "IncrementalAlterConfigs",
        "AlterPartitionReassignments",
        "ListPartitionReassignments",
        "OffsetDelete",
        "DescribeClientQuotas",
        "AlterClientQuotas",
        "DescribeUserScramCredentials",
        "AlterUserScramCredentials",
    ];
    let named = match key {
        56 => Some("AlterIsr"),
        57 => Some("UpdateFeatures"),
        60 => Some("DescribeCluster"),
        61 => Some("DescribeProducers"),
        k => usize::try_from(k).ok().and_then(|i| NAMES.get(i).copied()),
    };
    named.map_or_else(|| key.to_string(), str::to_string)
}

/// A CQL frame opcode (native protocol v4/v5); the number as text when unknown.
pub(crate) fn cql_opcode(op: i64) -> String {
    let name = match op {
        0x00 => "Error",
        0x01 => "Startup",
        0x02 => "Ready",
        0x03 => "Authenticate",
        0x05 => "Options",
        0x06 => "Supported",
        0x07 => "Query",
        0x08 => "Result",
        0x09 => "Prepare",
        0x0a => "Execute",
        0x0b => "Register",
        0x0c => "Event",
        0x0d => "Batch",
        0x0e => "AuthChallenge",
        0x0f => "AuthResponse",
        0x10 => "AuthSuccess",
        _ => return op.to_string(),
    };
    name.to_string()
}

/// An AMQP 0-9-1 frame type; the number as text when unknown.
pub(crate) fn amqp_frame_type(t: i64) -> String {
    let name = match t {
        1 => "Frame method",
        2 => "Content Header",
        3 => "Content Body",
        8 => "Heartbeat",
        _ => return t.to_string(),
    };
    name.to_string()
}

/// An AMQP 0-9-1 class.
fn amqp_class(class_id: i64) -> Option<&'static str> {
    Some(match class_id {
        10 => "Connection",
        20 => "Channel",
        40 => "Exchange",
        50 => "Queue",
        60 => "Basic",
        90 => "Tx",
        _ => return None,
    })
}

/// An AMQP 0-9-1 method, `<Class><Method>` (`-ok` replies keep AMQP's spelling); the class name for
/// method 0 (a content header names only its class); `Unknown` otherwise.
pub(crate) fn amqp_method(class_id: i64, method_id: i64) -> String {
    if class_id != 0 && method_id == 0 {
        return amqp_class(class_id).unwrap_or("Unknown").to_string();
    }
    let method = match (class_id, method_id) {
        (10, 10) => "Start",
        (10, 11) => "Start-ok",
        (10, 20) => "Secure",
        (10, 21) => "Secure-ok",
        (10, 30) => "Tune",
        (10, 31) => "Tune-ok",
        (10, 40) => "Open",
        (10, 41) => "Open-ok",
        (10, 50) => "Close",
        (10, 51) => "Close-ok",
        (20, 10) => "Open",
        (20, 11) => "Open-ok",
        (20, 20) => "Flow",
        (20, 21) => "Flow-ok",
        (20, 40) => "Close",
        (20, 41) => "Close-ok",
        (40, 10) => "Declare",
        (40, 11) => "Declare-ok",
        (40, 20) => "Delete",
        (40, 21) => "Delete-ok",
        (50, 10) => "Declare",
        (50, 11) => "Declare-ok",
        (50, 20) => "Bind",
        (50, 21) => "Bind-ok",
        (50, 30) => "Purge",
        (50, 31) => "Purge-ok",
        (50, 40) => "Delete",
        (50, 41) => "Delete-ok",
        (50, 50) => "Unbind",
        (50, 51) => "Unbind-ok",
        (60, 10) => "Qos",
        (60, 11) => "Qos-ok",
        (60, 20) => "Consume",
        (60, 21) => "Consume-ok",
        (60, 30) => "Cancel",
        (60, 31) => "Cancel-ok",
        (60, 40) => "Publish",
        (60, 50) => "Return",
        (60, 60) => "Deliver",
        (60, 70) => "Get",
        (60, 71) => "Get-ok",
        (60, 72) => "Get-empty",
        (60, 80) => "Ack",
        (60, 90) => "Reject",
        (60, 100) => "Recover-async",
        (60, 110) => "Recover",
        (60, 111) => "Recover-ok",
        (90, 10) => "Select",
        (90, 11) => "Select-ok",
        (90, 20) => "Commit",
        (90, 21) => "Commit-ok",
        (90, 30) => "Rollback",
        (90, 31) => "Rollback-ok",
        _ => return "Unknown".to_string(),
    };
    format!("{}{method}", amqp_class(class_id).unwrap_or("Unknown"))
}

/// A Finagle Mux message type (T = request, R = its reply, the negated number); `Unknown (n)` otherwise.
pub(crate) fn mux_frame_type(t: i64) -> String {
    let name = match t {
        1 => "Treq",
        -1 => "Rreq",
        2 => "Tdispatch",
        -2 => "Rdispatch",
        64 => "Tdrain",
        -64 => "Rdrain",
        65 => "Tping",
        -65 => "Rping",
        66 => "Tdiscarded",
        -66 => "Rdiscarded",
        67 => "Tlease",
        68 => "Tinit",
        -68 => "Rinit",
        -128 => "Rerr",
        127 => "Rerr (legacy)",
        -62 => "Tdiscarded (legacy)",
        _ => return format!("Unknown ({t})"),
    };
    name.to_string()
}

/// A DNS RCODE (IANA "DNS RCODEs"); the number as text when unknown.
pub(crate) fn dns_rcode(rcode: i64) -> String {
    let name = match rcode {
        0 => "NOERROR",
        1 => "FORMERR",
        2 => "SERVFAIL",
        3 => "NXDOMAIN",
        4 => "NOTIMP",
        5 => "REFUSED",
        6 => "YXDOMAIN",
        7 => "YXRRSET",
        8 => "NXRRSET",
        9 => "NOTAUTH",
        10 => "NOTZONE",
        11 => "DSOTYPENI",
        16 => "BADVERS",
        17 => "BADKEY",
        18 => "BADTIME",
        19 => "BADMODE",
        20 => "BADNAME",
        21 => "BADALG",
        22 => "BADTRUNC",
        23 => "BADCOOKIE",
        _ => return rcode.to_string(),
    };
    name.to_string()
}

/// A MySQL client command byte (`COM_*`, CamelCase); the number as text when unknown.
pub(crate) fn mysql_command(cmd: i64) -> String {
    const NAMES: [&str; 32] = [
        "Sleep",
        "Quit",
        "InitDB",
        "Query",
        "FieldList",
        "CreateDB",
        "DropDB",
        "Refresh",
        "Shutdown",
        "Statistics",
        "ProcessInfo",
        "Connect",
        "ProcessKill",
        "Debug",
        "Ping",
        "Time",
        "DelayedInsert",
        "ChangeUser",
        "BinlogDump",
        "TableDump",
        "ConnectOut",
        "RegisterSlave",
        "StmtPrepare",
        "StmtExecute",
        "StmtSendLongData",
        "StmtClose",
        "StmtReset",
        "SetOption",
        "StmtFetch",
        "Daemon",
        "BinlogDumpGTID",
        "ResetConnection",
    ];
    usize::try_from(cmd).ok().and_then(|i| NAMES.get(i)).map_or_else(|| cmd.to_string(), |n| (*n).to_string())
}

/// A traffic protocol number as `conn_stats.protocol` stores it (Pixie's numbering).
pub(crate) fn protocol(p: i64) -> String {
    const NAMES: [&str; 13] =
        ["Unknown", "HTTP", "HTTP2", "MySQL", "CQL", "PGSQL", "DNS", "Redis", "NATS", "Mongo", "Kafka", "Mux", "AMQP"];
    usize::try_from(p).ok().and_then(|i| NAMES.get(i)).map_or_else(|| format!("Invalid ({p})"), |n| (*n).to_string())
}

/// The reason phrase of an HTTP status code (RFC 9110 and the IANA registry); '' when unknown.
pub(crate) fn http_status(code: i64) -> String {
    let phrase = match code {
        100 => "Continue",
        101 => "Switching Protocols",
        102 => "Processing",
        103 => "Early Hints",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        203 => "Non-Authoritative Information",
        204 => "No Content",
        205 => "Reset Content",
        206 => "Partial Content",
        207 => "Multi-Status",
        208 => "Already Reported",
        226 => "IM Used",
        300 => "Multiple Choices",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        305 => "Use Proxy",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        402 => "Payment Required",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        407 => "Proxy Authentication Required",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        418 => "I'm a teapot",
        421 => "Misdirected Request",
        422 => "Unprocessable Entity",
        423 => "Locked",
        424 => "Failed Dependency",
        425 => "Too Early",
        426 => "Upgrade Required",
        428 => "Precondition Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        451 => "Unavailable For Legal Reasons",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        506 => "Variant Also Negotiates",
        507 => "Insufficient Storage",
        508 => "Loop Detected",
        510 => "Not Extended",
        511 => "Network Authentication Required",
        _ => "",
    };
    phrase.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_name_as_the_protocols_spell_them_and_unknown_codes_stay_numbers() {
        assert_eq!(kafka_api_key(0), "Produce");
        assert_eq!(kafka_api_key(11), "JoinGroup");
        assert_eq!(kafka_api_key(51), "AlterUserScramCredentials");
        assert_eq!(kafka_api_key(61), "DescribeProducers");
        assert_eq!(kafka_api_key(55), "55");
        assert_eq!(kafka_api_key(-1), "-1");
        assert_eq!(cql_opcode(7), "Query");
        assert_eq!(cql_opcode(4), "4");
        assert_eq!(amqp_frame_type(8), "Heartbeat");
        assert_eq!(amqp_method(60, 40), "BasicPublish");
        assert_eq!(amqp_method(10, 11), "ConnectionStart-ok");
        assert_eq!(amqp_method(60, 0), "Basic");
        assert_eq!(amqp_method(60, 41), "Unknown");
        assert_eq!(mux_frame_type(-2), "Rdispatch");
        assert_eq!(mux_frame_type(5), "Unknown (5)");
        assert_eq!(dns_rcode(3), "NXDOMAIN");
        assert_eq!(dns_rcode(12), "12");
        assert_eq!(mysql_command(3), "Query");
        assert_eq!(mysql_command(0x17), "StmtExecute");
        assert_eq!(mysql_command(99), "99");
        assert_eq!(protocol(5), "PGSQL");
        assert_eq!(protocol(40), "Invalid (40)");
        assert_eq!(http_status(404), "Not Found");
        assert_eq!(http_status(299), "");
    }
}
