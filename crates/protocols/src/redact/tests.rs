//! Tests of redaction: one per rule with exact outputs, then properties over arbitrary bytes and
//! generated (and truncated) JSON and forms.

use proptest::prelude::*;

use super::*;
use crate::http1::{Http1Conn, ParseConfig};

fn json_str(input: &str) -> String {
    String::from_utf8(json(input.as_bytes()).into_owned()).expect("utf8")
}

fn form_str(input: &str) -> String {
    String::from_utf8(form(input.as_bytes()).into_owned()).expect("utf8")
}

#[allow(clippy::ptr_arg)] // the variant is the point: `Borrowed` means nothing was copied
fn is_borrowed<T: ?Sized + ToOwned>(cow: &Cow<'_, T>) -> bool {
    matches!(cow, Cow::Borrowed(_))
}

#[test]
fn every_listed_header_is_redacted_whatever_its_case() {
    for name in [
        "Cookie",
        "Set-Cookie",
        "X-Api-Key",
        "Api-Key",
        "X-Auth-Token",
        "X-Amz-Security-Token",
        "pixie-api-key",
        "COOKIE",
        "x-api-key",
        "set-cookie",
    ] {
        assert_eq!(header_value(name, "s3cr3t value; a=b"), MARKER, "{name}");
    }
}

#[test]
fn authorization_keeps_a_known_scheme_and_nothing_else() {
    assert_eq!(header_value("Authorization", "Bearer eyJhbGciOi.x.y"), "Bearer [REDACTED]");
    assert_eq!(header_value("authorization", "basic dXNlcjpwYXNz"), "basic [REDACTED]");
    assert_eq!(header_value("Proxy-Authorization", "Basic dXNlcjpwYXNz"), "Basic [REDACTED]");
    assert_eq!(
        header_value("Authorization", "AWS4-HMAC-SHA256 Credential=AKIA/x, Signature=abc"),
        "AWS4-HMAC-SHA256 [REDACTED]"
    );
    // No scheme, or an unknown first word (which may be the credential itself): all goes.
    assert_eq!(header_value("Authorization", "rawtoken123"), MARKER);
    assert_eq!(header_value("Authorization", "secretpart rest"), MARKER);
    assert_eq!(header_value("Authorization", "Bearer"), MARKER);
    assert_eq!(header_value("Authorization", "Bearer\tabc"), MARKER);
    assert!(is_borrowed(&header_value("Authorization", "")));
}

#[test]
fn other_headers_are_kept_without_copying() {
    for (name, value) in [
        ("Host", "example.com"),
        ("Content-Type", "application/json"),
        ("X-Tokens-Used", "12"),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ("Referer", "https://a.example/page?q=1"),
    ] {
        let out = header_value(name, value);
        assert!(is_borrowed(&out), "{name}");
        assert_eq!(out, value);
    }
}

#[test]
fn url_headers_lose_their_secret_query() {
    assert_eq!(header_value("Location", "/cb?code=1&access_token=abc"), "/cb?code=1&access_token=[REDACTED]");
    assert_eq!(header_value("referer", "http://h/p?token=t"), "http://h/p?token=[REDACTED]");
}

#[test]
fn secret_names_are_exact_words_or_suffixes() {
    for name in [
        "password",
        "PASSWORD",
        "passwd",
        "secret",
        "client_secret",
        "token",
        "access_token",
        "refresh_token",
        "api_key",
        "apikey",
        "apiKey",
        "X-Amz-Signature",
        "sig",
        "new_password",
        "current_password",
        "accessToken",
        "user[password]",
        "id-token",
    ] {
        assert!(is_secret_name(name), "{name} must be secret");
    }
    for name in [
        "tokens_used",
        "password_hint",
        "token_type",
        "user",
        "signed",
        "sigma",
        "cookies_enabled",
        "key",
        "authorization_url",
        "",
        "_-",
    ] {
        assert!(!is_secret_name(name), "{name} must be kept");
    }
}

#[test]
fn every_listed_query_parameter_is_redacted() {
    for name in ["access_token", "token", "api_key", "apikey", "password", "X-Amz-Signature", "sig", "ACCESS_TOKEN"] {
        let target = format!("/p?user=al&{name}=v4lue&x=1");
        assert_eq!(url(&target), format!("/p?user=al&{name}=[REDACTED]&x=1"), "{name}");
    }
}

#[test]
fn query_parameters_match_when_percent_encoded_and_at_any_position() {
    assert_eq!(url("/p?pass%77ord=x"), "/p?pass%77ord=[REDACTED]");
    assert_eq!(url("/p?access%5Ftoken=x&b=2"), "/p?access%5Ftoken=[REDACTED]&b=2");
    assert_eq!(url("/p?token=a%26b"), "/p?token=[REDACTED]");
    assert_eq!(url("/p?a=1;token=x"), "/p?a=1;token=[REDACTED]");
    assert_eq!(url("/cb#access_token=x&state=s"), "/cb#access_token=[REDACTED]&state=s");
    assert_eq!(url("/p?token=x&token=y"), "/p?token=[REDACTED]&token=[REDACTED]");
    // Cut off inside the value: what there is goes.
    assert_eq!(url("/p?password=hun"), "/p?password=[REDACTED]");
    // Nothing to hide: an empty value, or a name cut off before its `=`.
    assert_eq!(url("/p?password=&a=1"), "/p?password=&a=1");
    assert_eq!(url("/p?passw"), "/p?passw");
}

#[test]
fn urls_without_secrets_are_not_copied() {
    for target in ["/", "/health", "/p?q=1&tokens_used=2&password_hint=x", "/a?b", "/?=&&==;#", "*"] {
        let out = url(target);
        assert!(is_borrowed(&out), "{target}");
        assert_eq!(out, target);
    }
}

#[test]
fn json_fields_are_redacted_at_any_depth_and_in_arrays() {
    assert_eq!(json_str(r#"{"user":"a","password":"hunter2"}"#), r#"{"user":"a","password":"[REDACTED]"}"#);
    assert_eq!(
        json_str(r#"{"a":{"b":{"client_secret":"s","n":1}},"list":[{"token":"t1"},{"token":"t2","x":[1]}]}"#),
        r#"{"a":{"b":{"client_secret":"[REDACTED]","n":1}},"list":[{"token":"[REDACTED]"},{"token":"[REDACTED]","x":[1]}]}"#
    );
    for name in ["password", "passwd", "secret", "client_secret", "token", "access_token", "refresh_token", "api_key"] {
        let input = format!(r#"[{{"{name}":"v"}}]"#);
        assert_eq!(json_str(&input), format!(r#"[{{"{name}":"[REDACTED]"}}]"#), "{name}");
    }
}

#[test]
fn json_values_of_any_type_are_replaced_whole() {
    assert_eq!(json_str(r#"{"token":12345,"a":1}"#), r#"{"token":"[REDACTED]","a":1}"#);
    assert_eq!(json_str(r#"{"token":true}"#), r#"{"token":"[REDACTED]"}"#);
    assert_eq!(json_str(r#"{"token":null}"#), r#"{"token":"[REDACTED]"}"#);
    assert_eq!(json_str(r#"{"secret":{"k":"v","n":[1,{"q":"}"}]},"next":2}"#), r#"{"secret":"[REDACTED]","next":2}"#);
    assert_eq!(json_str(r#"{"api_key":["a","b"],"z":0}"#), r#"{"api_key":"[REDACTED]","z":0}"#);
}

#[test]
fn json_whitespace_and_escapes_are_understood() {
    assert_eq!(
        json_str("{\n  \"password\" :\t \"a\\\"b\\\\\" ,\n  \"user\": \"x\"\n}"),
        "{\n  \"password\" :\t \"[REDACTED]\" ,\n  \"user\": \"x\"\n}"
    );
    // An escaped quote in a value does not end it; a key written with escapes still matches.
    assert_eq!(
        json_str(r#"{"note":"say \"password\": x","pass\u0077ord":"p"}"#),
        r#"{"note":"say \"password\": x","pass\u0077ord":"[REDACTED]"}"#
    );
    assert_eq!(json_str(r#"{"to\"ken":"kept"}"#), r#"{"to\"ken":"kept"}"#);
}

#[test]
fn truncated_json_loses_the_secret_bytes() {
    assert_eq!(json_str(r#"{"user":"a","password":"hunt"#), r#"{"user":"a","password":"[REDACTED]""#);
    assert_eq!(json_str(r#"{"user":"a","password":"hu\"n"#), r#"{"user":"a","password":"[REDACTED]""#);
    assert_eq!(json_str(r#"{"user":"a","password":"hunt\"#), r#"{"user":"a","password":"[REDACTED]""#);
    assert_eq!(json_str(r#"{"token":{"a":[1,2"#), r#"{"token":"[REDACTED]""#);
    assert_eq!(json_str(r#"{"token":1234"#), r#"{"token":"[REDACTED]""#);
    // Cut before any value byte: nothing to hide, nothing changed.
    for cut in [r#"{"user":"a","password""#, r#"{"user":"a","password": "#, r#"{"user":"a","passw"#] {
        assert!(is_borrowed(&json(cut.as_bytes())), "{cut}");
    }
}

#[test]
fn json_without_secrets_is_not_copied() {
    for input in [
        r#"{"user":"a","tokens_used":3,"password_hint":"pet","items":[{"id":1}]}"#,
        r#"["password","token"]"#,
        r#"{"a":"password"}"#,
        "",
        "{",
        "\"",
        "\"\\",
    ] {
        assert!(is_borrowed(&json(input.as_bytes())), "{input}");
    }
}

#[test]
fn form_fields_are_redacted() {
    assert_eq!(form_str("user=alice&password=hunter2"), "user=alice&password=[REDACTED]");
    assert_eq!(
        form_str("grant_type=refresh_token&refresh_token=r1&client_secret=c2&client_id=id"),
        "grant_type=refresh_token&refresh_token=[REDACTED]&client_secret=[REDACTED]&client_id=id"
    );
    assert_eq!(form_str("user%5Bpassword%5D=x+y&u=1"), "user%5Bpassword%5D=[REDACTED]&u=1");
    assert_eq!(form_str("passwd=truncat"), "passwd=[REDACTED]");
    assert!(is_borrowed(&form(b"user=alice&tokens_used=3&x")));
}

#[test]
fn bodies_are_scanned_by_content_type_or_by_their_look() {
    let redacted = |ct: Option<&str>, b: &str| String::from_utf8(body(ct, b.as_bytes()).into_owned()).expect("utf8");
    assert_eq!(redacted(Some("application/json; charset=utf-8"), r#"{"token":"t"}"#), r#"{"token":"[REDACTED]"}"#);
    assert_eq!(redacted(Some("application/vnd.api+JSON"), r#"{"token":"t"}"#), r#"{"token":"[REDACTED]"}"#);
    assert_eq!(redacted(Some("application/x-www-form-urlencoded"), "password=p"), "password=[REDACTED]");
    // No content type, or a wrong one: the body's first bytes decide.
    assert_eq!(redacted(None, " \n[{\"token\":\"t\"}]"), " \n[{\"token\":\"[REDACTED]\"}]");
    assert_eq!(redacted(None, "\u{feff}{\"token\":\"t\"}"), "\u{feff}{\"token\":\"[REDACTED]\"}");
    assert_eq!(redacted(None, "user=a&password=p"), "user=a&password=[REDACTED]");
    assert_eq!(redacted(Some("text/plain"), "password=p"), "password=[REDACTED]");
    // Neither JSON nor a form: left alone, even if a secret-looking word appears.
    for (ct, b) in [
        (Some("text/html"), "<p>password=x</p>"),
        (None, "hello password: x"),
        (Some("application/json"), "not json password=x"),
        (None, ""),
    ] {
        assert!(is_borrowed(&body(ct, b.as_bytes())), "{b}");
    }
}

#[test]
fn a_parsed_http1_exchange_is_redacted_everywhere() {
    let mut conn = Http1Conn::new(ParseConfig { max_body_bytes: 40, ..ParseConfig::default() });
    let req_body = r#"{"user":"alice","password":"correct horse battery staple"}"#;
    conn.feed_request_side(
        format!(
            "POST /login?next=/home&access_token=qq HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer abc.def\r\n\
             Cookie: sid=77\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{req_body}",
            req_body.len()
        )
        .as_bytes(),
        1,
    );
    let resp_body = "token=zz&user=alice";
    conn.feed_response_side(
        format!(
            "HTTP/1.1 200 OK\r\nSet-Cookie: sid=88; HttpOnly\r\nSet-Cookie: b=99\r\nContent-Length: {}\r\n\r\n{resp_body}",
            resp_body.len()
        )
        .as_bytes(),
        2,
    );
    let mut records = Vec::new();
    conn.drain_records(&mut records);
    let mut record = records.pop().expect("one record");
    http1_record(&mut record);
    assert_eq!(record.req.path, "/login?next=/home&access_token=[REDACTED]");
    assert_eq!(record.req.header("authorization"), Some("Bearer [REDACTED]"));
    assert_eq!(record.req.header("cookie"), Some(MARKER));
    assert_eq!(record.req.header("host"), Some("h"));
    // The body was truncated at 40 bytes, inside the password.
    assert_eq!(String::from_utf8_lossy(&record.req.body), r#"{"user":"alice","password":"[REDACTED]""#);
    assert_eq!(record.req.body_size, req_body.len() as u64);
    assert_eq!(record.resp.headers_json(), r#"{"Set-Cookie":"[REDACTED],[REDACTED]","Content-Length":"19"}"#);
    assert_eq!(String::from_utf8_lossy(&record.resp.body), "token=[REDACTED]&user=alice");
}

#[test]
fn a_message_without_secrets_is_left_untouched() {
    let mut conn = Http1Conn::new(ParseConfig::default());
    conn.feed_request_side(b"GET /api/items?page=2 HTTP/1.1\r\nHost: h\r\nAccept: */*\r\n\r\n", 1);
    conn.feed_response_side(
        b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n[1,2,3]",
        2,
    );
    let mut records = Vec::new();
    conn.drain_records(&mut records);
    let original = records.first().expect("record").clone();
    let mut record = original.clone();
    http1_record(&mut record);
    assert_eq!(record, original);
}

/// Bytes that steer the scanners into their branches far more often than uniform bytes.
const FRAGMENTS: &[&[u8]] = &[
    b"\"",
    b"\\",
    b"\\u",
    b"\\u0077",
    b":",
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b" ",
    b"=",
    b"&",
    b";",
    b"?",
    b"#",
    b"%",
    b"%7",
    b"%77",
    b"+",
    b"password",
    b"token",
    b"\"token\"",
    b"Authorization",
    b"Bearer ",
    b"sig",
    b"\xff",
    b"\xe2\x82",
];

fn arb_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..128),
        prop::collection::vec(prop::sample::select(FRAGMENTS), 0..32).prop_map(|parts| parts.concat()),
    ]
}

/// Keys of secret values in generated JSON. Only secret values contain `~`, `^` and `|`, so a
/// leak is any of those in the output.
const SECRET_KEYS: &[&str] = &["password", "Token", "ACCESS_TOKEN", "client_secret", "apiKey", "new-password"];

fn secret_leaf() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        "[~^|\"\\\\]{1,12}".prop_map(serde_json::Value::from),
        prop::collection::vec("[~^|]{1,4}", 0..3).prop_map(serde_json::Value::from),
        "[~^|]{1,4}".prop_map(|s| serde_json::json!({ "inner": s, "token": s })),
    ]
}

/// JSON whose only `~`, `^` and `|` characters sit in values of secret keys.
fn arb_json() -> impl Strategy<Value = serde_json::Value> {
    let leaf = prop_oneof![
        "[a-z0-9 \"\\\\:,{}]{0,10}".prop_map(serde_json::Value::from),
        any::<i32>().prop_map(serde_json::Value::from),
        Just(serde_json::Value::Null),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            prop::collection::vec(
                prop_oneof![
                    ("[a-z_]{1,8}", inner).prop_map(|(k, v)| (k, v)),
                    (prop::sample::select(SECRET_KEYS), secret_leaf()).prop_map(|(k, v)| (k.to_string(), v)),
                ],
                0..4,
            )
            .prop_map(|pairs| serde_json::Value::Object(pairs.into_iter().collect())),
        ]
    })
}

fn leaks(out: &[u8]) -> bool {
    out.iter().any(|b| b"~^|".contains(b))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in arb_bytes(), name in "[ -~]{0,24}") {
        let _ = json(&bytes);
        let _ = form(&bytes);
        let _ = body(None, &bytes);
        let text = String::from_utf8_lossy(&bytes);
        let _ = url(&text);
        let _ = header_value(&name, &text);
        let _ = header_value("authorization", &text);
        let _ = is_secret_name(&text);
        let _ = tokens(&bytes);
    }

    #[test]
    fn generated_json_keeps_no_secret_byte_at_any_truncation(
        value in arb_json(),
        pretty in any::<bool>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let text = if pretty {
            serde_json::to_string_pretty(&value).expect("serialise")
        } else {
            serde_json::to_string(&value).expect("serialise")
        };
        let full = json(text.as_bytes());
        prop_assert!(!leaks(&full), "{text}\n=> {}", String::from_utf8_lossy(&full));
        // Whole JSON stays JSON.
        prop_assert!(serde_json::from_slice::<serde_json::Value>(&full).is_ok(), "{}", String::from_utf8_lossy(&full));
        let truncated = &text.as_bytes()[..cut.index(text.len() + 1)];
        let out = json(truncated);
        prop_assert!(!leaks(&out), "{}\n=> {}", String::from_utf8_lossy(truncated), String::from_utf8_lossy(&out));
    }

    #[test]
    fn generated_forms_keep_no_secret_byte_at_any_truncation(
        pairs in prop::collection::vec(
            prop_oneof![
                ("[a-z_]{1,8}", "[a-z0-9%+=;]{0,8}"),
                (prop::sample::select(&["password", "access%5Ftoken", "API_KEY", "sig", "pass%77ord"][..]), "[~^|=;?#]{1,8}")
                    .prop_map(|(k, v)| (k.to_string(), v)),
            ],
            0..6,
        ),
        cut in any::<prop::sample::Index>(),
    ) {
        let text: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let text = text.join("&");
        let truncated = &text.as_bytes()[..cut.index(text.len() + 1)];
        let out = form(truncated);
        prop_assert!(!leaks(&out), "{}\n=> {}", String::from_utf8_lossy(truncated), String::from_utf8_lossy(&out));
        let target = format!("/p?{text}");
        prop_assert!(!leaks(url(&target).as_bytes()), "{target}");
    }
}

/// The arguments a Redis command keeps after redaction, as its `req_args` column.
fn redis_args(words: &[&str]) -> String {
    let mut command = crate::redis::Command::from_words(words.iter().map(|w| w.to_string()).collect(), false, 0);
    redis_command(&mut command);
    format!("{} {}", command.name, command.args_json())
}

#[test]
fn redis_credentials_are_redacted() {
    let cases: &[(&[&str], &str)] = &[
        (&["AUTH", "s3cret"], r#"AUTH ["[REDACTED]"]"#),
        (&["auth", "alice", "s3cret"], r#"AUTH ["[REDACTED]","[REDACTED]"]"#),
        (
            &["HELLO", "3", "AUTH", "alice", "s3cret", "SETNAME", "app"],
            r#"HELLO ["3","AUTH","[REDACTED]","[REDACTED]","SETNAME","app"]"#,
        ),
        (&["HELLO", "3"], r#"HELLO ["3"]"#),
        (
            &["MIGRATE", "h", "6379", "k", "0", "5000", "AUTH", "pw", "KEYS", "a"],
            r#"MIGRATE ["h","6379","k","0","5000","AUTH","[REDACTED]","KEYS","a"]"#,
        ),
        (
            &["MIGRATE", "h", "1", "", "0", "9", "AUTH2", "u", "pw"],
            r#"MIGRATE ["h","1","","0","9","AUTH2","[REDACTED]","[REDACTED]"]"#,
        ),
        (
            &["CONFIG", "SET", "requirepass", "pw", "maxmemory", "1mb", "masterauth", "pw2"],
            r#"CONFIG SET ["requirepass","[REDACTED]","maxmemory","1mb","masterauth","[REDACTED]"]"#,
        ),
        (
            &["ACL", "SETUSER", "bob", "on", ">pw", "<old", "#ab12", "~keys:*"],
            r##"ACL SETUSER ["bob","on",">[REDACTED]","<[REDACTED]","#[REDACTED]","~keys:*"]"##,
        ),
        (&["SET", "password", "kept"], r#"SET ["password","kept"]"#),
        (&["AUTH"], "AUTH []"),
    ];
    for (words, want) in cases {
        assert_eq!(redis_args(words), *want, "{words:?}");
    }
}

#[test]
fn postgres_password_literals_are_redacted_in_sql() {
    let cases: &[(&str, &str)] = &[
        ("ALTER ROLE bob PASSWORD 'hunter2'", "ALTER ROLE bob PASSWORD '[REDACTED]'"),
        (
            "CREATE USER a WITH ENCRYPTED password  'md5abc' VALID UNTIL 'infinity'",
            "CREATE USER a WITH ENCRYPTED password  '[REDACTED]' VALID UNTIL 'infinity'",
        ),
        ("alter user x password 'it''s' login", "alter user x password '[REDACTED]' login"),
        ("ALTER ROLE x PASSWORD 'cut sho", "ALTER ROLE x PASSWORD '[REDACTED]"),
        ("SELECT password FROM users WHERE name = 'x'", "SELECT password FROM users WHERE name = 'x'"),
        ("ALTER ROLE x PASSWORD NULL", "ALTER ROLE x PASSWORD NULL"),
        ("SELECT my_password 'x'", "SELECT my_password 'x'"),
        ("CREATE USER 'bob'@'%' IDENTIFIED BY 'hunter2'", "CREATE USER 'bob'@'%' IDENTIFIED BY '[REDACTED]'"),
        ("SET PASSWORD = PASSWORD('n3w')", "SET PASSWORD = PASSWORD('[REDACTED]')"),
        ("alter user x identified  by password '*ABC'", "alter user x identified  by password '[REDACTED]'"),
        ("SELECT 'a' ORDER BY 'x'", "SELECT 'a' ORDER BY 'x'"),
    ];
    for (sql, want) in cases {
        assert_eq!(sql_password_literals(sql), *want, "{sql}");
    }
    assert!(matches!(sql_password_literals("SELECT 1"), Cow::Borrowed(_)));
}

/// A PostgreSQL connection fed `requests` (each answered by ReadyForQuery): its records' requests.
fn pgsql_requests(requests: &[u8], responses: &[u8]) -> Vec<crate::pgsql::Request> {
    use crate::pgsql::{PgConfig, PgConn};
    use crate::{ConnParser, Side};
    let mut c = PgConn::new(PgConfig::default());
    c.feed(Side::Request, requests, 1);
    c.feed(Side::Response, responses, 2);
    let mut records = Vec::new();
    c.drain_records(&mut records);
    records.into_iter().map(|r| r.req).collect()
}

fn pg_typed(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    out.extend_from_slice(&(body.len() as u32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[test]
fn postgres_password_messages_are_redacted_whole() {
    // Startup as bob, cleartext password asked for and sent, then an ALTER ROLE with a new password.
    let startup = [&[0, 0, 0, 18, 0, 3, 0, 0][..], b"user\0bob\0\0"].concat();
    let requests = [startup, pg_typed(b'p', b"hunter2\0"), pg_typed(b'Q', b"ALTER ROLE bob PASSWORD 'n3w'\0")].concat();
    let ok = [pg_typed(b'R', &[0, 0, 0, 0]), pg_typed(b'Z', b"I")].concat();
    let responses = [pg_typed(b'R', &[0, 0, 0, 3]), ok, pg_typed(b'C', b"ALTER ROLE\0"), pg_typed(b'Z', b"I")].concat();
    let mut got = pgsql_requests(&requests, &responses);
    assert_eq!(
        got.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
        ["user=bob", "hunter2", "ALTER ROLE bob PASSWORD 'n3w'"]
    );
    for r in &mut got {
        pgsql_request(r);
    }
    assert_eq!(
        got.iter().map(|r| r.text.as_str()).collect::<Vec<_>>(),
        ["user=bob", "[REDACTED]", "ALTER ROLE bob PASSWORD '[REDACTED]'"]
    );
}

proptest! {
    /// Redaction never leaves a password literal in SQL text.
    #[test]
    fn postgres_password_literals_never_survive_redaction(pw in "[a-zA-Z0-9]{6,12}", pre in "[a-z ]{0,10}") {
        let sql = format!("{pre}ALTER ROLE x PASSWORD '{pw}'");
        prop_assert!(!sql_password_literals(&sql).contains(&pw));
    }
}

fn tokens_str(input: &[u8]) -> String {
    String::from_utf8_lossy(&tokens(input)).into_owned()
}

const JWT: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhZG1pbiIsImV4cCI6MTc5OTk5OTk5OX0.c2lnbmF0dXJlLWJ5dGVzLWhlcmU";
const KEY: &str = "px-api-Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0";
const VIZIER_CREDENTIAL: &str =
    "v1.bc01f93b-e737-4958-8506-f271d67baf23.0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";

#[test]
fn credential_shapes_are_redacted_in_binary_bodies() {
    // A protobuf response the way gRPC frames it: field tags and length bytes around the strings.
    let mut body = b"\x00\x00\x00\x00\x90\n$8a4d50d1-96df-46dc-a0fa-af2b07a15255\x12\x02vm\x1a\x68".to_vec();
    body.extend_from_slice(VIZIER_CREDENTIAL.as_bytes());
    body.extend_from_slice(b"\"\x2c");
    body.extend_from_slice(KEY.as_bytes());
    body.extend_from_slice(b"\x2a\x5a");
    body.extend_from_slice(JWT.as_bytes());
    let out = tokens(&body);
    let text = String::from_utf8_lossy(&out);
    assert!(!text.contains("0f1e2d3c") && !text.contains("Zm9vYmFy") && !text.contains("c2lnbmF0"), "{text}");
    assert!(text.contains("8a4d50d1-96df-46dc-a0fa-af2b07a15255\u{12}\u{2}vm"), "ids stay: {text}");
    assert!(text.contains("px-api-[REDACTED]"), "the key's kind stays: {text}");
    assert_eq!(text.matches(MARKER).count(), 3, "{text}");
}

#[test]
fn each_shape_becomes_one_marker_and_the_rest_stays() {
    assert_eq!(tokens_str(format!("token {JWT} end").as_bytes()), "token [REDACTED] end");
    assert_eq!(tokens_str(format!("{KEY}\n").as_bytes()), "px-api-[REDACTED]\n");
    let dep = KEY.replace("px-api-", "px-dep-");
    assert_eq!(tokens_str(format!("key={dep}").as_bytes()), "key=px-dep-[REDACTED]");
    assert_eq!(tokens_str(format!("({VIZIER_CREDENTIAL})").as_bytes()), "([REDACTED])");
    // A JWE (five segments, the second empty with `dir`).
    let jwe = "eyJhbGciOiJkaXIiLCJlbmMiOiJBMjU2R0NNIn0..aXYtYnl0ZXM.Y2lwaGVydGV4dA.dGFnLWJ5dGVz";
    assert_eq!(tokens_str(jwe.as_bytes()), "[REDACTED]");
}

#[test]
fn lookalikes_are_kept_without_copying() {
    for text in [
        "class=\"px-2 px-api-short\" v1.2.3 eyJ alone",
        "px-api-Zm9vYmFy",                      // too short for a key
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0", // one dot: not a JWT
        "v1.bc01f93b-e737-4958-8506-f271d67baf23.short",
        "pX-api-Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0", // the prefix is lower case
        "v1.bc01f93b_e737_4958_8506_f271d67baf23.0f1e2d3c4b5a69788796a5b4c3d2e1f0",
    ] {
        assert!(is_borrowed(&tokens(text.as_bytes())), "{text}");
    }
}

#[test]
fn credential_names_are_secret() {
    for name in ["x-loupe-vizier-credential", "x-loupe-gateway-credential", "aws_credentials", "Credential"] {
        assert!(is_secret_name(name), "{name}");
    }
    assert!(!is_secret_name("credential_type") && !is_secret_name("credentials_url"));
}

#[test]
fn payloads_and_sql_lose_tokens_too() {
    assert_eq!(redis_args(&["SET", "session:1", JWT]), r#"SET ["session:1","[REDACTED]"]"#);
    let mut nats = crate::nats::Message {
        cmd: "PUB".into(),
        body: format!(r#"{{"subject":"v2c.1.x.register","payload":"{KEY}"}}"#),
        cut: false,
        ts_ns: 0,
    };
    nats_message(&mut nats);
    assert_eq!(nats.body, r#"{"subject":"v2c.1.x.register","payload":"px-api-[REDACTED]"}"#);
    let mut query = format!("Q\0\0\0\0SELECT * FROM keys WHERE k = '{KEY}'\0").into_bytes();
    let len = u32::try_from(query.len() - 1).expect("len").to_be_bytes();
    query[1..5].copy_from_slice(&len);
    let requests = pgsql_requests(&query, b"Z\0\0\0\x05I");
    let mut request = requests.into_iter().next().expect("one request");
    pgsql_request(&mut request);
    assert_eq!(request.text, "SELECT * FROM keys WHERE k = 'px-api-[REDACTED]'");
}

proptest! {
    /// A token anywhere in arbitrary bytes never survives, and the bytes around it do.
    #[test]
    fn a_token_among_arbitrary_bytes_is_always_redacted(
        before in prop::collection::vec(any::<u8>(), 0..64),
        after in prop::collection::vec(any::<u8>(), 0..64),
        which in 0..3usize,
    ) {
        let token = [JWT, KEY, VIZIER_CREDENTIAL][which];
        let mut bytes = before.clone();
        bytes.push(b' ');
        bytes.extend_from_slice(token.as_bytes());
        bytes.push(b' ');
        bytes.extend_from_slice(&after);
        let out = tokens(&bytes);
        let secret = &token.as_bytes()[token.len() - 20..];
        prop_assert!(!out.windows(secret.len()).any(|w| w == secret));
        prop_assert!(out.ends_with(&after));
    }
}

/// Every record of a recorded connection, fed whole.
fn records_of<P: crate::ConnParser>(mut conn: P, req: &[u8], resp: &[u8]) -> Vec<P::Record> {
    conn.feed(crate::Side::Request, req, 1);
    conn.feed(crate::Side::Response, resp, 2);
    conn.close(3);
    let mut out = Vec::new();
    conn.drain_records(&mut out);
    out
}

#[test]
fn kafka_sasl_authenticate_bytes_are_redacted() {
    use crate::kafka::{KafkaConfig, KafkaConn};
    let mut records = records_of(
        KafkaConn::new(KafkaConfig::default()),
        include_bytes!("../../testdata/kafka/kafka_python.req"),
        include_bytes!("../../testdata/kafka/kafka_python.resp"),
    );
    records.iter_mut().for_each(kafka_record);
    let sasl = records.iter().find(|r| r.req.api_key == 36).expect("SaslAuthenticate");
    assert_eq!(sasl.req.body, r#"{"auth_bytes":"[REDACTED]"}"#);
    assert_eq!(sasl.resp.as_ref().map(|r| r.body.as_str()), Some(r#"{"auth_bytes":"[REDACTED]","error_code":0}"#));
    let all = format!("{records:?}");
    assert!(!all.contains("alice-secret"), "{all}");
    // Nothing else changed: topics, client ids and the SASL mechanism stay.
    assert!(all.contains(r#"\"name\":\"events\""#) && all.contains("loupe-test") && all.contains("PLAIN"));
}

#[test]
fn mongodb_sasl_payloads_and_user_passwords_are_redacted() {
    use crate::mongodb::{MongodbConfig, MongodbConn};
    let mut records = records_of(
        MongodbConn::new(MongodbConfig::default()),
        include_bytes!("../../testdata/mongodb/pymongo.req"),
        include_bytes!("../../testdata/mongodb/pymongo.resp"),
    );
    records.iter_mut().for_each(mongodb_record);
    let by_cmd = |cmd: &str| records.iter().find(|r| r.req.cmd == cmd).expect("command").clone();
    let start = by_cmd("saslStart");
    assert!(start.req.body.contains(r#""payload":"[REDACTED]""#), "{}", start.req.body);
    assert!(start.req.body.contains(r#""mechanism":"SCRAM-SHA-256""#));
    assert!(start.resp.as_ref().is_some_and(|r| r.body.contains(r#""payload":"[REDACTED]""#)));
    let cont = by_cmd("saslContinue");
    assert!(cont.req.body.contains(r#""payload":"[REDACTED]""#) && !cont.req.body.contains("$binary"));
    let user = by_cmd("createUser");
    assert!(user.req.body.contains(r#""pwd":"[REDACTED]""#) && user.req.body.contains(r#""createUser":"bob""#));
    let all = format!("{records:?}");
    assert!(!all.contains("bob-secret") && !all.contains("biwsbj1hbGljZS"), "{all}");
    // Other documents are untouched.
    assert!(by_cmd("find").req.body.contains(r#""filter":{"qty":{"$gt":1}}"#));
    // A sensitive command cut too short to parse is replaced whole.
    let mut cut = start.clone();
    cut.req.body.truncate(40);
    mongodb_record(&mut cut);
    assert_eq!(cut.req.body, MARKER);
}

#[test]
fn cql_auth_tokens_and_role_passwords_are_redacted() {
    use crate::cql::{CqlConfig, CqlConn};
    let mut records = records_of(
        CqlConn::new(CqlConfig::default()),
        include_bytes!("../../testdata/cql/driver_v4.req"),
        include_bytes!("../../testdata/cql/driver_v4.resp"),
    );
    records.iter_mut().for_each(cql_record);
    let auth = records.iter().find(|r| r.req.opcode == 0x0F).expect("AUTH_RESPONSE");
    assert_eq!(auth.req.body, r#"{"token":"[REDACTED]"}"#);
    let all = format!("{records:?}");
    assert!(!all.contains("cassandra-secret"), "{all}");
    assert!(all.contains("SELECT release_version FROM system.local"));
    // A role's password in CQL text.
    let query = b"CREATE ROLE app WITH PASSWORD = 'hunter2' AND LOGIN = true";
    let mut req = vec![0x04, 0, 0, 1, 0x07];
    let body = [&(query.len() as u32).to_be_bytes()[..], query, &[0, 1, 0]].concat();
    req.extend_from_slice(&(body.len() as u32).to_be_bytes());
    req.extend(body);
    let mut records = records_of(CqlConn::new(CqlConfig::default()), &req, b"\x84\0\0\x01\x08\0\0\0\x04\0\0\0\x01");
    records.iter_mut().for_each(cql_record);
    assert_eq!(
        records[0].req.body,
        r#"{"query":"CREATE ROLE app WITH PASSWORD = '[REDACTED]' AND LOGIN = true","consistency":"ONE"}"#
    );
}

#[test]
fn the_fast_name_filter_lets_every_listed_word_through() {
    // `secret_name` rejects most names by their last two letters: every word must pass that.
    for word in SECRET_SUFFIXES.iter().chain(SECRET_NAMES) {
        assert!(secret_name(word, false), "{}", String::from_utf8_lossy(word));
        assert!(secret_name(&word.to_ascii_uppercase(), false), "{}", String::from_utf8_lossy(word));
        let mut prefixed = b"x-".to_vec();
        prefixed.extend_from_slice(word);
        assert_eq!(secret_name(&prefixed, false), SECRET_SUFFIXES.contains(word), "{}", String::from_utf8_lossy(word));
    }
    for safe in ["Host", "Date", "Content-Type", "Connection", "Server", "x", "", "-_-"] {
        assert!(!is_secret_name(safe), "{safe}");
    }
}

#[test]
fn every_token_start_holds_a_byte_the_prefilter_looks_for() {
    // `tokens` skips text with none of `-`, `J`, `.`: each start must hold one.
    for start in TOKEN_STARTS {
        assert!(start.iter().any(|b| matches!(b, b'-' | b'J' | b'.')), "{}", String::from_utf8_lossy(start));
    }
}
