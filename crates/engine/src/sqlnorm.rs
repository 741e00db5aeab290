//! SQL normalization for `px.normalize_pgsql` and `px.normalize_mysql`: constants replaced by placeholders
//! (`$n` for PostgreSQL, `?` for MySQL) so that queries differing only in values group together, with the
//! values kept in order as the parameters.
//!
//! Owns a small lexer (quoted strings with their prefixes and escapes, numbers, `true`/`false`, existing
//! placeholders, quoted identifiers and comments kept as they are) and the JSON answer Pixie's scripts
//! pluck: `{"query": "...", "params": ["...", ...]}`, or `{"error": "..."}`. Never panics on any input;
//! must not parse SQL grammar (a value is a value wherever it sits).

/// Which dialect: placeholder spelling and quoting rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    /// `$n` placeholders; `"x"` is an identifier.
    Postgres,
    /// `?` placeholders; `"x"` is a string, `` `x` `` an identifier.
    MySql,
}

/// `normalize_pgsql(sql, cmd)`: `cmd` is the request's tag, `Query` (the text is the query) or `Execute`
/// (`query=[...] params=[...]`, a prepared statement's text and bound values). Either case is taken:
/// `pgsql_events.req_cmd` holds `QUERY` and `EXECUTE`, so `normalize_pgsql(df.req, df.req_cmd)` works.
pub(crate) fn pgsql(sql: &str, cmd: &str) -> String {
    match cmd.to_ascii_lowercase().as_str() {
        "query" => json(normalize(sql, &[], Dialect::Postgres)),
        "execute" => {
            let (query, params) = split_execute(sql);
            json(normalize(query, &params, Dialect::Postgres))
        }
        _ => error_json("cmd_code must be one of 'Query' or 'Execute'"),
    }
}

/// `normalize_mysql(sql, cmd)`: `cmd` is the command byte, 3 (COM_QUERY) or 23 (COM_STMT_EXECUTE, with
/// `query=[...] params=[...]`).
pub(crate) fn mysql(sql: &str, cmd: i64) -> String {
    match cmd {
        3 => json(normalize(sql, &[], Dialect::MySql)),
        23 => {
            let (query, params) = split_execute(sql);
            json(normalize(query, &params, Dialect::MySql))
        }
        _ => error_json("cmd_code must be one of '3' or '23'"),
    }
}

/// `query=[<query>] params=[<a>, <b>]` → the query and the bound values (how the collectors store an
/// executed prepared statement). Text without that shape is all query.
fn split_execute(text: &str) -> (&str, Vec<String>) {
    let Some(rest) = text.strip_prefix("query=[") else { return (text, Vec::new()) };
    match rest.rfind("] params=[") {
        Some(at) => {
            let query = &rest[..at];
            let params = &rest[at + "] params=[".len()..];
            let params = params.strip_suffix(']').unwrap_or(params);
            let params = if params.is_empty() { Vec::new() } else { params.split(", ").map(str::to_string).collect() };
            (query, params)
        }
        None => (rest.strip_suffix(']').unwrap_or(rest), Vec::new()),
    }
}

/// The normalized query and every parameter: for PostgreSQL the bound values (`$1..$k`) then each constant
/// in order (`$k+1`, ...); for MySQL, in order of appearance, each `?` taking the next bound value.
fn normalize(sql: &str, bound: &[String], dialect: Dialect) -> (String, Vec<String>) {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = String::with_capacity(sql.len());
    let mut params: Vec<String> = match dialect {
        Dialect::Postgres => bound.to_vec(),
        Dialect::MySql => Vec::new(),
    };
    let mut bound_iter = bound.iter();
    let ident_char = |c: char| c.is_alphanumeric() || c == '_' || c == '$' || c == '@' || c == '.';
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let prev_ident = i > 0 && ident_char(chars[i - 1]);
        // Comments are kept as they are.
        if c == '-' && chars.get(i + 1) == Some(&'-') {
            let end = chars[i..].iter().position(|&c| c == '\n').map_or(chars.len(), |p| i + p);
            out.extend(&chars[i..end]);
            i = end;
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            let end = find_seq(&chars, i + 2, &['*', '/']).map_or(chars.len(), |p| p + 2);
            out.extend(&chars[i..end]);
            i = end;
            continue;
        }
        // A string constant, with its prefix (E'', B'', X'', N'').
        let prefixed = matches!(c, 'E' | 'e' | 'B' | 'b' | 'X' | 'x' | 'N' | 'n') && chars.get(i + 1) == Some(&'\'');
        let string_quote = c == '\'' || (dialect == Dialect::MySql && c == '"');
        if (prefixed && !prev_ident) || string_quote {
            let start = i;
            let quote = if prefixed { '\'' } else { c };
            let backslash = prefixed && matches!(c, 'E' | 'e') || dialect == Dialect::MySql;
            let end = end_of_quoted(&chars, if prefixed { i + 2 } else { i + 1 }, quote, backslash);
            let literal: String = chars[start..end].iter().collect();
            push_param(&mut out, &mut params, literal, dialect);
            i = end;
            continue;
        }
        // Quoted identifiers are names, not values.
        if c == '"' || c == '`' {
            let end = end_of_quoted(&chars, i + 1, c, false);
            out.extend(&chars[i..end]);
            i = end;
            continue;
        }
        // An existing placeholder.
        if dialect == Dialect::Postgres && c == '$' && !prev_ident && chars.get(i + 1).is_some_and(char::is_ascii_digit)
        {
            let end = chars[i + 1..].iter().position(|c| !c.is_ascii_digit()).map_or(chars.len(), |p| i + 1 + p);
            out.extend(&chars[i..end]);
            i = end;
            continue;
        }
        if dialect == Dialect::MySql && c == '?' {
            out.push('?');
            if let Some(v) = bound_iter.next() {
                params.push(v.clone());
            }
            i += 1;
            continue;
        }
        // A number.
        if c.is_ascii_digit() && !prev_ident {
            let mut end = i;
            let mut seen_dot = false;
            let mut seen_exp = false;
            while end < chars.len() {
                let d = chars[end];
                if d.is_ascii_digit() {
                    end += 1;
                } else if d == '.' && !seen_dot && !seen_exp {
                    seen_dot = true;
                    end += 1;
                } else if matches!(d, 'e' | 'E')
                    && !seen_exp
                    && chars.get(end + 1).is_some_and(|n| n.is_ascii_digit() || *n == '-' || *n == '+')
                {
                    seen_exp = true;
                    end += 2;
                } else {
                    break;
                }
            }
            let literal: String = chars[i..end].iter().collect();
            push_param(&mut out, &mut params, literal, dialect);
            i = end;
            continue;
        }
        // Words: `true`/`false` are values, anything else (keywords, names) is kept.
        if ident_char(c) && !prev_ident {
            let end = chars[i..].iter().position(|&c| !ident_char(c)).map_or(chars.len(), |p| i + p);
            let word: String = chars[i..end].iter().collect();
            if word.eq_ignore_ascii_case("true") || word.eq_ignore_ascii_case("false") {
                push_param(&mut out, &mut params, word, dialect);
            } else {
                out.push_str(&word);
            }
            i = end;
            continue;
        }
        out.push(c);
        i += 1;
    }
    (out, params)
}

fn push_param(out: &mut String, params: &mut Vec<String>, literal: String, dialect: Dialect) {
    params.push(literal);
    match dialect {
        Dialect::Postgres => {
            out.push('$');
            out.push_str(&params.len().to_string());
        }
        Dialect::MySql => out.push('?'),
    }
}

/// The index just past the closing `quote` of a quoted run starting at `from` (doubled quotes, and
/// backslash escapes when `backslash`, stay inside); the end of the text when it never closes.
fn end_of_quoted(chars: &[char], from: usize, quote: char, backslash: bool) -> usize {
    let mut i = from;
    while i < chars.len() {
        let c = chars[i];
        if backslash && c == '\\' {
            i += 2;
            continue;
        }
        if c == quote {
            if chars.get(i + 1) == Some(&quote) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    chars.len()
}

fn find_seq(chars: &[char], from: usize, seq: &[char]) -> Option<usize> {
    (from..chars.len()).find(|&i| chars[i..].starts_with(seq))
}

fn json((query, params): (String, Vec<String>)) -> String {
    let params: Vec<String> = params.iter().map(|p| serde_json::Value::from(p.as_str()).to_string()).collect();
    format!("{{\"query\":{},\"params\":[{}]}}", serde_json::Value::from(query), params.join(","))
}

fn error_json(message: &str) -> String {
    format!("{{\"error\":{}}}", serde_json::Value::from(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_constants_become_numbered_placeholders_after_the_bound_values() {
        assert_eq!(pgsql("SELECT 1", "Query"), r#"{"query":"SELECT $1","params":["1"]}"#);
        // The tag as pgsql_events.req_cmd spells it.
        assert_eq!(pgsql("SELECT 1", "QUERY"), pgsql("SELECT 1", "Query"));
        assert_eq!(
            pgsql("query=[SELECT * FROM test WHERE prop=$1 AND prop2='abcd'] params=['1234']", "Execute"),
            r#"{"query":"SELECT * FROM test WHERE prop=$1 AND prop2=$2","params":["'1234'","'abcd'"]}"#
        );
        assert_eq!(
            pgsql(r"INSERT INTO test (a, b, c, d, e) VALUES (1, 'abcd', 1.23, true, E'\\xDEADBEEF')", "Query"),
            r#"{"query":"INSERT INTO test (a, b, c, d, e) VALUES ($1, $2, $3, $4, $5)","params":["1","'abcd'","1.23","true","E'\\\\xDEADBEEF'"]}"#
        );
        assert_eq!(
            pgsql(r#"SELECT "col1", t2.c FROM t2 WHERE name = 'it''s' -- 5"#, "Query"),
            r#"{"query":"SELECT \"col1\", t2.c FROM t2 WHERE name = $1 -- 5","params":["'it''s'"]}"#
        );
        assert_eq!(pgsql("SELECT 1", "Parse"), r#"{"error":"cmd_code must be one of 'Query' or 'Execute'"}"#);
    }

    #[test]
    fn mysql_constants_become_question_marks_in_order_with_the_bound_values() {
        assert_eq!(mysql("SELECT 1", 3), r#"{"query":"SELECT ?","params":["1"]}"#);
        assert_eq!(
            mysql("SELECT * FROM test WHERE prop=@a AND prop2='abcd'", 3),
            r#"{"query":"SELECT * FROM test WHERE prop=@a AND prop2=?","params":["'abcd'"]}"#
        );
        assert_eq!(
            mysql("query=[SELECT * FROM test WHERE prop=? AND prop2='abcd'] params=[1234]", 23),
            r#"{"query":"SELECT * FROM test WHERE prop=? AND prop2=?","params":["1234","'abcd'"]}"#
        );
        assert_eq!(
            mysql("SELECT `t1`.x2 FROM t1 LIMIT 10", 3),
            r#"{"query":"SELECT `t1`.x2 FROM t1 LIMIT ?","params":["10"]}"#
        );
        assert_eq!(mysql("SELECT 1", 1), r#"{"error":"cmd_code must be one of '3' or '23'"}"#);
    }

    #[test]
    fn any_text_normalizes_without_panicking() {
        for text in ["'", "E'", "\"", "$", "1e", "1e+", "/*", "--", "query=[", "query=[x] params=[", "é'ü", "`"] {
            let _ = pgsql(text, "Query");
            let _ = pgsql(text, "Execute");
            let _ = mysql(text, 3);
            let _ = mysql(text, 23);
        }
    }
}
