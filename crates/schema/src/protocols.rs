//! The protocol tables other than `http_events` (Pixie's names and columns), and `conn_stats`. Empty until a
//! parser fills them, but declared now so that a script naming any of them compiles and returns no rows.

crate::conn8_table! {
    /// `mysql_events`: MySQL/MariaDB request-response pairs.
    mysql_events = "mysql_events", "MySQL request-response pairs", MysqlEventRow, MysqlEventsBuilder {
        req_cmd: I64 = "req_cmd", "ST_NONE", "command byte (3 = COM_QUERY)";
        req_body: Str = "req_body", "ST_NONE", "request body (the query text)";
        resp_status: I64 = "resp_status", "ST_NONE", "0 unknown, 1 none, 2 OK, 3 error";
        resp_body: Str = "resp_body", "ST_NONE", "response body";
        latency_ns: I64 = "latency", "ST_DURATION_NS", "response time minus request time";
    }
}

crate::conn8_table! {
    /// `pgsql_events`: PostgreSQL request-response pairs.
    pgsql_events = "pgsql_events", "PostgreSQL request-response pairs", PgsqlEventRow, PgsqlEventsBuilder {
        req_cmd: Str = "req_cmd", "ST_NONE", "message tag or command";
        req: Str = "req", "ST_NONE", "request";
        resp: Str = "resp", "ST_NONE", "response";
        latency_ns: I64 = "latency", "ST_DURATION_NS", "response time minus request time";
    }
}

crate::conn8_table! {
    /// `cql_events`: Cassandra CQL request-response pairs.
    cql_events = "cql_events", "Cassandra CQL request-response pairs", CqlEventRow, CqlEventsBuilder {
        req_op: I64 = "req_op", "ST_NONE", "request opcode (7 QUERY, 9 PREPARE, 10 EXECUTE, 13 BATCH, ...; 12 EVENT for a server push)";
        req_body: Str = "req_body", "ST_NONE", "request body as JSON (query text, consistency, prepared id, ...)";
        resp_op: I64 = "resp_op", "ST_NONE", "response opcode (8 RESULT, 0 ERROR, ...), 0 without a response";
        resp_body: Str = "resp_body", "ST_NONE", "response body as JSON (result kind, columns and row count, or error code and message)";
        latency_ns: I64 = "latency", "ST_DURATION_NS", "response time minus request time";
    }
}

crate::conn8_table! {
    /// `dns_events`: DNS queries and answers.
    dns_events = "dns_events", "DNS request-response pairs", DnsEventRow, DnsEventsBuilder {
        req_header: Str = "req_header", "ST_NONE", "request header as JSON";
        req_body: Str = "req_body", "ST_NONE", "queries as JSON";
        resp_header: Str = "resp_header", "ST_NONE", "response header as JSON";
        resp_body: Str = "resp_body", "ST_NONE", "answers as JSON";
        latency_ns: I64 = "latency", "ST_DURATION_NS", "response time minus request time";
    }
}

crate::conn8_table! {
    /// `redis_events`: Redis commands and replies.
    redis_events = "redis_events", "Redis request-response pairs", RedisEventRow, RedisEventsBuilder {
        req_cmd: Str = "req_cmd", "ST_NONE", "command name";
        req_args: Str = "req_args", "ST_NONE", "command arguments";
        resp: Str = "resp", "ST_NONE", "reply";
        latency_ns: I64 = "latency", "ST_DURATION_NS", "response time minus request time";
    }
}

crate::conn8_table! {
    /// `kafka_events.beta`: Kafka request-response pairs.
    kafka_events = "kafka_events.beta", "Kafka request-response pairs", KafkaEventRow, KafkaEventsBuilder {
        req_cmd: I64 = "req_cmd", "ST_NONE", "Kafka API key (0 Produce, 1 Fetch, 3 Metadata, ...)";
        client_id: Str = "client_id", "ST_NONE", "client id of the request header";
        req_body: Str = "req_body", "ST_NONE", "request summarised as JSON (Produce and Fetch topics and partitions, ...)";
        resp: Str = "resp", "ST_NONE", "response summarised as JSON, empty when none is sent (Produce with acks=0)";
        latency_ns: I64 = "latency", "ST_DURATION_NS", "response time minus request time";
    }
}

crate::conn8_table! {
    /// `nats_events.beta`: NATS protocol messages (no latency: NATS has no request-response pairs).
    nats_events = "nats_events.beta", "NATS protocol messages", NatsEventRow, NatsEventsBuilder {
        cmd: Str = "cmd", "ST_NONE", "protocol verb";
        body: Str = "body", "ST_NONE", "options as JSON";
        resp: Str = "resp", "ST_NONE", "OK or the ERR text";
    }
}

crate::conn8_table! {
    /// `mux_events`: Finagle mux request-response pairs.
    mux_events = "mux_events", "Finagle mux request-response pairs", MuxEventRow, MuxEventsBuilder {
        req_type: I64 = "req_type", "ST_NONE", "request type";
        latency_ns: I64 = "latency", "ST_DURATION_NS", "response time minus request time";
    }
}

crate::conn8_table! {
    /// `amqp_events`: AMQP 0-9-1 frames and their replies.
    amqp_events = "amqp_events", "AMQP request-response pairs", AmqpEventRow, AmqpEventsBuilder {
        frame_type: I64 = "frame_type", "ST_NONE", "frame type";
        channel: I64 = "channel", "ST_NONE", "channel number";
        req_class_id: I64 = "req_class_id", "ST_NONE", "request class id";
        req_method_id: I64 = "req_method_id", "ST_NONE", "request method id";
        resp_class_id: I64 = "resp_class_id", "ST_NONE", "response class id";
        resp_method_id: I64 = "resp_method_id", "ST_NONE", "response method id";
        req_msg: Str = "req_msg", "ST_NONE", "request message";
        resp_msg: Str = "resp_msg", "ST_NONE", "response message";
        latency_ns: I64 = "latency", "ST_DURATION_NS", "response time minus request time";
    }
}

crate::conn8_table! {
    /// `mqtt_events`: MQTT control packets paired with their answers. Pixie parses MQTT but has no
    /// table for it (pixie-io/pixie#341); the columns follow its other binary protocols.
    mqtt_events = "mqtt_events", "MQTT packets paired with their answers", MqttEventRow, MqttEventsBuilder {
        req_type: I64 = "req_type", "ST_NONE", "control packet type of the packet that started the exchange (1 CONNECT, 3 PUBLISH, 8 SUBSCRIBE, ...)";
        req_body: Str = "req_body", "ST_NONE", "its fields as JSON";
        resp_type: I64 = "resp_type", "ST_NONE", "control packet type of the answer (2 CONNACK, 4 PUBACK, ...), 0 when none is expected";
        resp_body: Str = "resp_body", "ST_NONE", "the answer's fields as JSON";
        latency_ns: I64 = "latency", "ST_DURATION_NS", "answer time minus packet time, 0 without an answer";
    }
}

crate::conn8_table! {
    /// `mongodb_events`: MongoDB request-response pairs.
    mongodb_events = "mongodb_events", "MongoDB request-response pairs", MongodbEventRow, MongodbEventsBuilder {
        req_cmd: Str = "req_cmd", "ST_NONE", "command (insert, find, hello, ...; the opcode name for legacy opcodes)";
        req_body: Str = "req_body", "ST_NONE", "request documents as extended JSON";
        resp_status: Str = "resp_status", "ST_NONE", "ok or error (the reply's ok field), empty without a reply";
        resp_body: Str = "resp_body", "ST_NONE", "reply documents as extended JSON";
        latency_ns: I64 = "latency", "ST_DURATION_NS", "response time minus request time";
    }
}

crate::table! {
    /// `tls_events`: TLS handshake metadata (CONN8 without `encrypted`).
    tls_events = "tls_events", "TLS handshake metadata", TlsEventRow, TlsEventsBuilder {
        time_ns: Time = "time_", "ST_NONE", "time of the response that completed the pair";
        upid: Upid = "upid", "ST_UPID", "process owning the traced socket";
        remote_addr: Str = "remote_addr", "ST_IP_ADDRESS", "peer IP address";
        remote_port: I64 = "remote_port", "ST_PORT", "peer port";
        local_addr: Str = "local_addr", "ST_IP_ADDRESS", "own IP address";
        local_port: I64 = "local_port", "ST_PORT", "own port";
        trace_role: I64 = "trace_role", "ST_NONE", "role of the traced process: 1 client, 2 server, 4 unknown";
        req_type: I64 = "req_type", "ST_NONE", "TLS record content type";
        req_body: Str = "req_body", "ST_NONE", "handshake request as JSON (extensions, version)";
        resp_body: Str = "resp_body", "ST_NONE", "handshake response as JSON";
        latency_ns: I64 = "latency", "ST_DURATION_NS", "response time minus request time";
    }
}

crate::table! {
    /// `conn_stats`: cumulative per-connection counters, per (upid, remote endpoint, role, protocol, ssl).
    conn_stats = "conn_stats", "cumulative connection counters per process and remote endpoint", ConnStatsRow, ConnStatsBuilder {
        time_ns: Time = "time_", "ST_NONE", "time of the report";
        upid: Upid = "upid", "ST_UPID", "process owning the connections";
        remote_addr: Str = "remote_addr", "ST_IP_ADDRESS", "peer IP address";
        remote_port: I64 = "remote_port", "ST_PORT", "peer port";
        trace_role: I64 = "trace_role", "ST_NONE", "role of the traced process: 1 client, 2 server, 4 unknown";
        addr_family: I64 = "addr_family", "ST_NONE", "socket address family";
        protocol: I64 = "protocol", "ST_NONE", "traffic protocol (0 unknown, 1 HTTP, 2 HTTP2, 3 MySQL, ...)";
        ssl: Bool = "ssl", "ST_NONE", "TLS seen on the connection";
        conn_open: I64 = "conn_open", "ST_NONE", "connections opened since tracing began";
        conn_close: I64 = "conn_close", "ST_NONE", "connections closed since tracing began";
        conn_active: I64 = "conn_active", "ST_NONE", "connections open now";
        bytes_sent: I64 = "bytes_sent", "ST_BYTES", "bytes sent to the remote";
        bytes_recv: I64 = "bytes_recv", "ST_BYTES", "bytes received from the remote";
    }
}
