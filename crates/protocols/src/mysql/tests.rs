//! Tests of the MySQL parser: recorded `mariadb` sessions give exact records (the auth response
//! never kept), a binary prepared statement (prepare, execute, close) pairs with its statement
//! text, and arbitrary input never panics and stays bounded.

use proptest::prelude::*;

use super::*;
use crate::{ConnParser, Side};

fn records(req: &[u8], resp: &[u8]) -> Vec<Record> {
    let mut c = MysqlConn::new(MysqlConfig::default());
    for p in req.chunks(700) {
        c.feed(Side::Request, p, 1);
    }
    for p in resp.chunks(700) {
        c.feed(Side::Response, p, 2);
    }
    let mut out = Vec::new();
    c.drain_records(&mut out);
    out
}

type Row = (u8, String, i64, String);

fn rows(records: &[Record]) -> Vec<Row> {
    records.iter().map(|r| (r.req.cmd, r.req.body.clone(), r.resp.status, r.resp.body.clone())).collect()
}

fn row(cmd: u8, body: &str, status: i64, resp: &str) -> Row {
    (cmd, body.to_string(), status, resp.to_string())
}

#[test]
fn recorded_mariadb_sessions_give_exact_records() {
    let got = records(
        include_bytes!("../../testdata/mysql/queries.req"),
        include_bytes!("../../testdata/mysql/queries.resp"),
    );
    assert_eq!(
        rows(&got),
        [
            row(3, "SELECT id, name FROM items ORDER BY id", 2, "Resultset rows = 2"),
            row(3, "INSERT INTO items VALUES (3, 'fig')", 2, ""),
            row(3, "SELECT * FROM nope", 3, "Table 'shop.nope' doesn't exist"),
        ]
    );
    let got = records(
        include_bytes!("../../testdata/mysql/sql_prepare.req"),
        include_bytes!("../../testdata/mysql/sql_prepare.resp"),
    );
    assert_eq!(
        rows(&got),
        [
            row(3, "PREPARE s FROM 'SELECT name FROM items WHERE id = ?'", 2, ""),
            row(3, "SET @id = 2", 2, ""),
            row(3, "EXECUTE s USING @id", 2, "Resultset rows = 1"),
            row(3, "DEALLOCATE PREPARE s", 2, ""),
        ]
    );
}

fn packet(seq: u8, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![len as u8, (len >> 8) as u8, (len >> 16) as u8, seq];
    out.extend_from_slice(payload);
    out
}

/// A greeting, a handshake response with a secret auth response, and the server's OK.
fn handshake(deprecate_eof: bool) -> (Vec<u8>, Vec<u8>) {
    let caps: u32 = 0x0000_a28c | if deprecate_eof { 1 << 24 } else { 0 };
    let mut greeting = vec![10];
    greeting.extend_from_slice(b"5.5.5-10.11.19-MariaDB\0");
    greeting.extend_from_slice(&[4, 0, 0, 0]);
    greeting.extend_from_slice(b"saltsalt\0");
    greeting.extend_from_slice(&(caps as u16).to_le_bytes());
    greeting.extend_from_slice(&[8, 2, 0]);
    greeting.extend_from_slice(&((caps >> 16) as u16).to_le_bytes());
    greeting.extend_from_slice(&[21; 11]);
    let mut response = caps.to_le_bytes().to_vec();
    response.extend_from_slice(&[0, 0, 0, 1, 33]);
    response.extend_from_slice(&[0; 23]);
    response.extend_from_slice(b"alice\0\x14SECRETSECRETSECRET!!shop\0");
    (packet(1, &response), [packet(0, &greeting), packet(2, &[0, 0, 0, 2, 0, 0, 0])].concat())
}

fn eof() -> Vec<u8> {
    vec![0xfe, 0, 0, 2, 0]
}

#[test]
fn binary_prepared_statements_pair_with_their_text_with_and_without_eof_packets() {
    for deprecate in [false, true] {
        let (mut req, mut resp) = handshake(deprecate);
        let mut prepare = vec![COM_STMT_PREPARE];
        prepare.extend_from_slice(b"SELECT name FROM items WHERE id = ?");
        req.extend(packet(0, &prepare));
        let mut execute = vec![COM_STMT_EXECUTE, 7, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 0];
        execute.extend_from_slice(&2i32.to_le_bytes());
        req.extend(packet(0, &execute));
        req.extend(packet(0, &[COM_STMT_CLOSE, 7, 0, 0, 0]));
        // Prepare OK: id 7, one column, one parameter; then the definitions.
        let mut r = packet(1, &[0, 7, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0]);
        r.extend(packet(2, b"\x03def\x04shop\x00\x00\x00\x01?\x00\x0c?\x00\x0b\x00\x00\x00\x08\x80\x00\x00\x00\x00"));
        if !deprecate {
            r.extend(packet(3, &eof()));
        }
        r.extend(packet(
            4,
            b"\x03def\x04shop\x05items\x05items\x04name\x04name\x0c\x21\x00\xfc\xff\x02\x00\xfc\x10\x00\x00\x00\x00",
        ));
        if !deprecate {
            r.extend(packet(5, &eof()));
        }
        // Execute: a binary result set of one column, one row, then EOF (or OK with 0xfe).
        r.extend(packet(1, &[1]));
        r.extend(packet(
            2,
            b"\x03def\x04shop\x05items\x05items\x04name\x04name\x0c\x21\x00\xfc\xff\x02\x00\xfc\x10\x00\x00\x00\x00",
        ));
        if !deprecate {
            r.extend(packet(3, &eof()));
        }
        r.extend(packet(4, b"\x00\x00\x04pear"));
        let end = if deprecate { vec![0xfe, 0, 0, 2, 0, 0, 0] } else { eof() };
        r.extend(packet(5, &end));
        resp.extend(r);
        let got = records(&req, &resp);
        let text = "SELECT name FROM items WHERE id = ?";
        assert_eq!(
            rows(&got),
            [
                row(COM_STMT_PREPARE, text, STATUS_OK, ""),
                row(COM_STMT_EXECUTE, text, STATUS_OK, "Resultset rows = 1"),
                row(COM_STMT_CLOSE, text, STATUS_NONE, ""),
            ],
            "deprecate_eof {deprecate}"
        );
        let dump = format!("{got:?}");
        assert!(!dump.contains("SECRET"), "the auth response is never kept");
    }
}

#[test]
fn tls_after_the_ssl_request_is_opaque_and_greetings_are_recognised() {
    let (_, resp) = handshake(false);
    assert!(looks_like_greeting(&resp));
    assert!(!looks_like_greeting(b"GET / HTTP/1.1\r\n"));
    let mut c = MysqlConn::new(MysqlConfig::default());
    c.feed(Side::Response, &resp[..resp.len() - 11], 1);
    let mut ssl = (0x0000_a28cu32 | 0x800).to_le_bytes().to_vec();
    ssl.extend_from_slice(&[0; 28]);
    c.feed(Side::Request, &packet(1, &ssl), 2);
    c.feed(Side::Request, b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc", 3);
    assert!(c.stats().encrypted);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Whatever arrives, nothing panics and framing stays bounded.
    #[test]
    fn arbitrary_input_never_panics_and_stays_bounded(
        ops in prop::collection::vec((any::<bool>(), prop::collection::vec(any::<u8>(), 0..200), 0u64..4), 0..40),
    ) {
        let mut c = MysqlConn::new(MysqlConfig::default());
        let mut out = Vec::new();
        for (ts, (request, bytes, gap)) in ops.into_iter().enumerate() {
            let side = if request { Side::Request } else { Side::Response };
            c.feed(side, &bytes, ts as u64);
            c.gap(side, gap, ts as u64);
            prop_assert!(c.buffered_bytes() <= 2 * (4 + 512 + 64));
            c.drain_records(&mut out);
        }
        c.close(u64::MAX);
        prop_assert_eq!(c.buffered_bytes(), 0);
    }
}
