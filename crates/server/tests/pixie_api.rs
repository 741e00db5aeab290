//! Pixie's public API end to end: Pixie's own Python client, `pxapi` from PyPI installed unchanged into a
//! virtualenv by `scripts/pxapi-check.sh`, against a real `loupe up` tracing real traffic made here. It lists the
//! vizier, returns exactly the rows `px run` returns for the same script (plain and encrypted), raises `PxLError`
//! at the mistake's line, and decodes Loupe's answer to every Pixie call with pxapi's own message classes.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Guard, free_port, temp_dir, wait_for_port};
use crate::e2e::{can_trace, curl, login, px, start_loupe, write_script};

const REQUESTS: usize = 10;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `scripts/pxapi-check.sh` with the arguments `args` adds (and the bundled script it compares), one at a
/// time: the tests share its virtualenv, which the first run makes.
pub(crate) fn pxapi_check(args: impl FnOnce(&mut Command)) -> std::process::Output {
    static VENV: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = VENV.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut c = Command::new(repo().join("scripts/pxapi-check.sh"));
    c.env("PXAPI_VENV", repo().join("target/pxapi-venv"));
    args(&mut c);
    c.args(["--bundled", "px/http_data"])
        .arg("--bundled-file")
        .arg(repo().join("crates/scripts/px/http_data/http_data.pxl"))
        .output()
        .expect("run scripts/pxapi-check.sh")
}

#[test]
fn pixies_python_client_runs_unchanged_against_loupe_up() {
    if !can_trace() {
        return;
    }
    let (_loupe, _metrics, api_port) = start_loupe();
    login(api_port);
    let dir = temp_dir("pxapi");
    let port = free_port();
    let _server = Guard(
        Command::new("/usr/bin/python3")
            .args(["-m", "http.server", &port.to_string(), "--bind", "127.0.0.1", "--directory"])
            .arg(&dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn python3 http.server"),
    );
    wait_for_port(port, "python http.server");
    for i in 0..REQUESTS {
        curl(&[&format!("http://127.0.0.1:{port}/pxapi-{i}")]);
    }
    let script = write_script(
        &dir,
        "rows.pxl",
        &format!(
            "import px\n\
             df = px.DataFrame('http_events', start_time='-5m')\n\
             df = df[(df.local_port == {port}) | (df.remote_port == {port})]\n\
             df = df[['time_', 'upid', 'trace_role', 'req_method', 'req_path', 'resp_status', 'latency']]\n\
             px.display(df, 'rows')\n"
        ),
    );
    // Both ends of each request (curl and the server) are traced: wait until every row is in.
    let deadline = Instant::now() + Duration::from_secs(30);
    let expected = loop {
        let out = px(api_port, &["run", "-f", &script.display().to_string(), "-o", "json"]);
        assert!(out.status.success(), "px run: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        if text.lines().count() == 2 * REQUESTS {
            break text;
        }
        assert!(Instant::now() < deadline, "not all {} rows traced: {text}", 2 * REQUESTS);
        std::thread::sleep(Duration::from_millis(300));
    };
    std::fs::write(dir.join("expected.json"), &expected).expect("expected rows");
    let bad = write_script(
        &dir,
        "bad.pxl",
        "import px\ndf = px.DataFrame('http_events')\ndf = df[df.resp_statu >= 400]\npx.display(df)\n",
    );
    let created = px(api_port, &["api-key", "create", "-d", "pxapi", "-o", "json"]);
    assert!(created.status.success(), "api-key create: {}", String::from_utf8_lossy(&created.stderr));
    let created: Value = serde_json::from_slice(&created.stdout).expect("json");
    let key = created["key"].as_str().expect("key");
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("hostname").trim().to_owned();

    let out = pxapi_check(|c| {
        c.args(["--addr", &format!("127.0.0.1:{api_port}"), "--key", key, "--cluster", &host])
            .args(["--script", &script.display().to_string(), "--table", "rows"])
            .args(["--expect", &dir.join("expected.json").display().to_string()])
            .args(["--bad-script", &bad.display().to_string(), "--bad-line", "3"])
            .args(["--email", "admin@default.com", "--org", "default"]);
    });
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "pxapi check failed:\n{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default()).expect("json summary");
    assert_eq!(seen["rows"], 2 * REQUESTS, "{seen}");
    let relation = serde_json::json!([
        ["time_", "TIME64NS", "ST_NONE"],
        ["upid", "STRING", "ST_UPID"],
        ["trace_role", "INT64", "ST_NONE"],
        ["req_method", "STRING", "ST_HTTP_REQ_METHOD"],
        ["req_path", "STRING", "ST_NONE"],
        ["resp_status", "INT64", "ST_HTTP_RESP_STATUS"],
        ["latency", "INT64", "ST_DURATION_NS"],
    ]);
    assert_eq!(seen["relation"], relation, "{seen}");
    assert_eq!(seen["compatible_calls"].as_array().map(Vec::len), Some(18), "{seen}");
    let error = seen["pxl_error"].as_str().unwrap_or_default();
    assert!(error.contains("PxL, line 3, unknown column `resp_statu` in table `http_events`"), "{error}");
}

/// Pixie's cloud services through the split cloud's gateway (`loupe cloud api` in front of the auth, profile and
/// scripts processes): each call reaches the process that serves it, with an API key in `pixie-api-key` as
/// Pixie's clients send it. `key` is an API key of the admin (its id `key_id`); the cloud has no vizier.
pub(crate) fn pixie_calls_reach_each_split_process(api_port: u16, key: &str, key_id: &str) {
    use loupe_proto::pixie::cloudpb as px;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{api_port}"))
            .expect("endpoint")
            .connect()
            .await
            .expect("connect to the gateway");
        fn with_key<T>(key: &str, m: T) -> tonic::Request<T> {
            let mut r = tonic::Request::new(m);
            r.metadata_mut().insert("pixie-api-key", key.parse().expect("ascii"));
            r
        }
        // Auth process.
        let keys = px::api_key_manager_client::ApiKeyManagerClient::new(channel.clone())
            .list(with_key(key, px::ListApiKeyRequest {}))
            .await
            .expect("APIKeyManager.List")
            .into_inner();
        let id = uuid::Uuid::parse_str(key_id).expect("uuid").as_u64_pair();
        assert!(keys.keys.iter().any(|k| k.id.map(|i| (i.high_bits, i.low_bits)) == Some(id)), "{keys:?}");
        // Profile process: no vizier in this cloud.
        let clusters = px::vizier_cluster_info_client::VizierClusterInfoClient::new(channel.clone())
            .get_cluster_info(with_key(key, px::GetClusterInfoRequest { id: None }))
            .await
            .expect("VizierClusterInfo.GetClusterInfo")
            .into_inner();
        assert_eq!(clusters.clusters, vec![]);
        // Scripts process.
        let script = px::script_mgr_client::ScriptMgrClient::new(channel.clone())
            .get_script_contents(with_key(key, px::GetScriptContentsReq { script_id: "px/http_data".into() }))
            .await
            .expect("ScriptMgr.GetScriptContents")
            .into_inner();
        let bundled = std::fs::read_to_string(repo().join("crates/scripts/px/http_data/http_data.pxl")).expect("read");
        assert_eq!(script.contents, bundled);
        // Without a credential: refused by the service, as Loupe's own calls are.
        let refused = px::script_mgr_client::ScriptMgrClient::new(channel.clone())
            .get_scripts(px::GetScriptsReq {})
            .await
            .expect_err("no credential");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
        // A Pixie service Loupe does not serve: UNIMPLEMENTED, with a message.
        let mut grpc = tonic::client::Grpc::new(channel);
        grpc.ready().await.expect("ready");
        let path = tonic::codegen::http::uri::PathAndQuery::from_static("/px.cloudapi.ArtifactTracker/GetArtifactList");
        let unserved = grpc
            .unary::<_, tonic::codegen::Bytes, _>(
                with_key(key, tonic::codegen::Bytes::new()),
                path,
                loupe_proto::codec::BytesCodec,
            )
            .await
            .expect_err("unserved");
        assert_eq!(
            (unserved.code(), unserved.message()),
            (
                tonic::Code::Unimplemented,
                "/px.cloudapi.ArtifactTracker/GetArtifactList is part of Pixie's API that Loupe does not serve"
            )
        );
    });
}
