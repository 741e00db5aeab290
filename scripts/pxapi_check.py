#!/usr/bin/env python3
"""Pixie's own Python client, `pxapi` from PyPI, unchanged, against a Loupe cloud.

Run by scripts/pxapi-check.sh (which makes the virtualenv). Checks, each against what the caller says it must be:
  * list_healthy_clusters() lists the cluster named --cluster;
  * connect_to_cluster + prepare_script + results(--table) returns exactly the rows of --expect (the JSON lines
    `px run -o json` printed for the same script), with and without use_encryption;
  * a script with a mistake (--bad-script) raises pxapi.PxLError naming its line (--bad-line);
  * with --other-key (an API key of another org), none of this org's clusters is visible or reachable;
  * compatibility: every call Loupe serves for Pixie's clients is made with pxapi's shipped stubs and its answer
    decoded with pxapi's shipped message classes (pxapi.proto.*), which must find no field they do not know;
    exact values are checked where they are known.
With --bench it only times results(--table) through pxapi, plain and encrypted, and prints rows/s.
Prints one JSON object with what it saw; exits 1 on the first failed check.
"""

import argparse
import datetime
import json
import sys
import time

import grpc
import grpc.aio
import pxapi
from google.protobuf import unknown_fields
from pxapi.proto import cloudapi_pb2 as cpb
from pxapi.proto import cloudapi_pb2_grpc as cgrpc
from pxapi.proto import uuid_pb2 as uuidpb
from pxapi.proto import vizierapi_pb2 as vpb
from pxapi.proto import vizierapi_pb2_grpc as vgrpc
from pxapi.utils import uuid_pb_from_string, uuid_pb_to_string

FAILED = []


def check(cond, what):
    if not cond:
        FAILED.append(what)
        print(json.dumps({"failed": what}), flush=True)
        sys.exit(1)


def channels(addr, ca):
    if ca:
        creds = grpc.ssl_channel_credentials(open(ca, "rb").read())
        return (lambda url: grpc.secure_channel(url, creds)), (lambda url: grpc.aio.secure_channel(url, creds))
    return (lambda url: grpc.insecure_channel(url)), (lambda url: grpc.aio.insecure_channel(url))


def client(args, key, encrypt=False):
    sync_fn, async_fn = channels(args.addr, args.ca)
    return pxapi.Client(token=key, server_url=args.addr, use_encryption=encrypt, channel_fn=sync_fn,
                        conn_channel_fn=async_fn)


def px_time(ns):
    """A time as `px run -o json` prints it (Arrow's naive timestamp: UTC, fraction in 3, 6 or 9 digits)."""
    secs, nanos = divmod(ns, 1_000_000_000)
    text = datetime.datetime.fromtimestamp(secs, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    if nanos == 0:
        return text
    if nanos % 1_000_000 == 0:
        return text + ".%03d" % (nanos // 1_000_000)
    if nanos % 1_000 == 0:
        return text + ".%06d" % (nanos // 1_000)
    return text + ".%09d" % nanos


def row_as_px_json(row):
    out = {}
    for i, col in enumerate(row.relation._columns):
        v = row[i]
        if col.column_type == vpb.TIME64NS:
            v = px_time(v)
        elif col.column_type == vpb.STRING:
            v = v.decode() if isinstance(v, bytes) else v
        elif col.column_type == vpb.UINT128:
            v = str(v)
        out[col.column_name] = v
    return out


def canonical(rows):
    return sorted(json.dumps(r, sort_keys=True) for r in rows)


def run_rows(args, key, cluster_id, encrypt):
    conn = client(args, key, encrypt).connect_to_cluster(cluster_id)
    script = conn.prepare_script(open(args.script).read())
    return list(script.results(args.table))


def no_unknown_fields(msg, where):
    """pxapi's classes keep what they cannot place as unknown fields: there must be none, at any depth."""
    check(len(unknown_fields.UnknownFieldSet(msg)) == 0, f"{where}: fields pxapi does not know")
    for field, value in msg.ListFields():
        if field.type != field.TYPE_MESSAGE:
            continue
        if field.label == field.LABEL_REPEATED:
            items = value.values() if field.message_type.GetOptions().map_entry else value
            for i, item in enumerate(items):
                if hasattr(item, "ListFields"):
                    no_unknown_fields(item, f"{where}.{field.name}[{i}]")
        else:
            no_unknown_fields(value, f"{where}.{field.name}")


def raw_call(channel, path, request, response_class, key, streaming=False):
    """Calls `path` and decodes the raw answer bytes with pxapi's `response_class`."""
    md = [("pixie-api-key", key), ("pixie-api-client", "python")]
    if streaming:
        call = channel.unary_stream(path, request_serializer=type(request).SerializeToString,
                                    response_deserializer=lambda b: b)
        answers = [response_class.FromString(b) for b in call(request, metadata=md)]
    else:
        call = channel.unary_unary(path, request_serializer=type(request).SerializeToString,
                                   response_deserializer=lambda b: b)
        answers = [response_class.FromString(call(request, metadata=md))]
    for i, a in enumerate(answers):
        no_unknown_fields(a, f"{path}[{i}]")
    return answers if streaming else answers[0]


def code_of(fn):
    try:
        fn()
    except grpc.RpcError as e:
        return e.code(), e.details()
    return grpc.StatusCode.OK, ""


def compatibility(args, cluster_id, seen):
    channel = channels(args.addr, args.ca)[0](args.addr)
    key = args.key
    calls = []

    # VizierClusterInfo
    info = raw_call(channel, "/px.cloudapi.VizierClusterInfo/GetClusterInfo", cpb.GetClusterInfoRequest(),
                    cpb.GetClusterInfoResponse, key)
    mine = [c for c in info.clusters if uuid_pb_to_string(c.id) == cluster_id]
    check(len(mine) == 1 and mine[0].cluster_name == args.cluster and mine[0].status == cpb.CS_HEALTHY
          and mine[0].config.passthrough_enabled and mine[0].lastHeartbeatNs > 0, "GetClusterInfo lists the cluster")
    one = raw_call(channel, "/px.cloudapi.VizierClusterInfo/GetClusterInfo",
                   cpb.GetClusterInfoRequest(id=uuid_pb_from_string(cluster_id)), cpb.GetClusterInfoResponse, key)
    check([uuid_pb_to_string(c.id) for c in one.clusters] == [cluster_id], "GetClusterInfo by id")
    conn_info = raw_call(channel, "/px.cloudapi.VizierClusterInfo/GetClusterConnectionInfo",
                         cpb.GetClusterConnectionInfoRequest(id=uuid_pb_from_string(cluster_id)),
                         cpb.GetClusterConnectionInfoResponse, key)
    check(conn_info.token == "", "GetClusterConnectionInfo: passthrough, no direct token")
    calls += ["VizierClusterInfo.GetClusterInfo", "VizierClusterInfo.GetClusterConnectionInfo"]

    # APIKeyManager: create, list, get, delete, then get is NOT_FOUND.
    created = raw_call(channel, "/px.cloudapi.APIKeyManager/Create", cpb.CreateAPIKeyRequest(desc="pxapi check"),
                       cpb.APIKey, key)
    check(created.key.startswith("px-api-") and created.desc == "pxapi check", "APIKeyManager.Create")
    listed = raw_call(channel, "/px.cloudapi.APIKeyManager/List", cpb.ListAPIKeyRequest(), cpb.ListAPIKeyResponse, key)
    check(created.id in [k.id for k in listed.keys], "APIKeyManager.List has the new key")
    got = raw_call(channel, "/px.cloudapi.APIKeyManager/Get", cpb.GetAPIKeyRequest(id=created.id),
                   cpb.GetAPIKeyResponse, key)
    check(got.key.id == created.id and got.key.desc == "pxapi check" and got.key.org_id == created.org_id,
          "APIKeyManager.Get")
    raw_call(channel, "/px.cloudapi.APIKeyManager/Delete", created.id, __import__("google.protobuf.empty_pb2",
             fromlist=["Empty"]).Empty, key)
    code, _ = code_of(lambda: raw_call(channel, "/px.cloudapi.APIKeyManager/Get", cpb.GetAPIKeyRequest(id=created.id),
                                       cpb.GetAPIKeyResponse, key))
    check(code == grpc.StatusCode.NOT_FOUND, "a deleted API key is not found")
    calls += ["APIKeyManager.Create", "APIKeyManager.List", "APIKeyManager.Get", "APIKeyManager.Delete"]

    # VizierDeploymentKeyManager
    dep = raw_call(channel, "/px.cloudapi.VizierDeploymentKeyManager/Create",
                   cpb.CreateDeploymentKeyRequest(desc="pxapi check"), cpb.DeploymentKey, key)
    check(dep.key.startswith("px-dep-"), "VizierDeploymentKeyManager.Create")
    deps = raw_call(channel, "/px.cloudapi.VizierDeploymentKeyManager/List", cpb.ListDeploymentKeyRequest(),
                    cpb.ListDeploymentKeyResponse, key)
    check(dep.id in [k.id for k in deps.keys], "VizierDeploymentKeyManager.List")
    got = raw_call(channel, "/px.cloudapi.VizierDeploymentKeyManager/Get", cpb.GetDeploymentKeyRequest(id=dep.id),
                   cpb.GetDeploymentKeyResponse, key)
    check(got.key.desc == "pxapi check", "VizierDeploymentKeyManager.Get")
    raw_call(channel, "/px.cloudapi.VizierDeploymentKeyManager/Delete", dep.id,
             __import__("google.protobuf.empty_pb2", fromlist=["Empty"]).Empty, key)
    calls += ["VizierDeploymentKeyManager." + m for m in ("Create", "List", "Get", "Delete")]

    # UserService.GetUser and OrganizationService.GetOrg, from the ids on the key.
    user = raw_call(channel, "/px.cloudapi.UserService/GetUser", created.user_id, cpb.UserInfo, key)
    check(user.email == args.email and user.org_id == created.org_id, "UserService.GetUser")
    org = raw_call(channel, "/px.cloudapi.OrganizationService/GetOrg", created.org_id, cpb.OrgInfo, key)
    check(org.org_name == args.org and org.id == created.org_id, "OrganizationService.GetOrg")
    calls += ["UserService.GetUser", "OrganizationService.GetOrg"]

    # ScriptMgr
    scripts = raw_call(channel, "/px.cloudapi.ScriptMgr/GetScripts", cpb.GetScriptsReq(), cpb.GetScriptsResp, key)
    names = {s.name: s for s in scripts.scripts}
    check(args.bundled in names, "ScriptMgr.GetScripts lists the bundled script")
    contents = raw_call(channel, "/px.cloudapi.ScriptMgr/GetScriptContents",
                        cpb.GetScriptContentsReq(script_id=args.bundled), cpb.GetScriptContentsResp, key)
    check(contents.contents == open(args.bundled_file).read() and contents.metadata.name == args.bundled,
          "ScriptMgr.GetScriptContents")
    views = raw_call(channel, "/px.cloudapi.ScriptMgr/GetLiveViews", cpb.GetLiveViewsReq(), cpb.GetLiveViewsResp, key)
    check(sorted(v.name for v in views.live_views) == sorted(n for n, s in names.items() if s.has_live_view),
          "ScriptMgr.GetLiveViews")
    for v in views.live_views[:1]:
        lv = raw_call(channel, "/px.cloudapi.ScriptMgr/GetLiveViewContents",
                      cpb.GetLiveViewContentsReq(live_view_id=v.id), cpb.GetLiveViewContentsResp, key)
        check(lv.metadata.name == v.name and lv.pxl_contents != "", "ScriptMgr.GetLiveViewContents")
    calls += ["ScriptMgr.GetScripts", "ScriptMgr.GetScriptContents", "ScriptMgr.GetLiveViews",
              "ScriptMgr.GetLiveViewContents"]

    # VizierService through the cloud: HealthCheck and ExecuteScript, each answer decoded by pxapi's classes.
    health = raw_call(channel, "/px.api.vizierpb.VizierService/HealthCheck",
                      vpb.HealthCheckRequest(cluster_id=cluster_id), vpb.HealthCheckResponse, key, streaming=True)
    check(len(health) == 1 and health[0].status.code == 0, "VizierService.HealthCheck")
    answers = raw_call(channel, "/px.api.vizierpb.VizierService/ExecuteScript",
                       vpb.ExecuteScriptRequest(query_str=open(args.script).read(), cluster_id=cluster_id),
                       vpb.ExecuteScriptResponse, key, streaming=True)
    kinds = [a.WhichOneof("result") for a in answers]
    rows = sum(a.data.batch.num_rows for a in answers if a.HasField("data") and a.data.HasField("batch"))
    eos = [a.data.batch.eos for a in answers if a.HasField("data") and a.data.HasField("batch")]
    check(kinds[0] == "meta_data" and answers[-1].data.HasField("execution_stats") and eos[-1] and
          rows == seen["rows"], "VizierService.ExecuteScript: metadata, batches ending in eos, stats")
    rel = answers[0].meta_data.relation
    seen["relation"] = [(c.column_name, vpb.DataType.Name(c.column_type), vpb.SemanticType.Name(c.column_semantic_type))
                        for c in rel.columns]
    calls += ["VizierService.HealthCheck", "VizierService.ExecuteScript"]

    # What Loupe does not serve answers UNIMPLEMENTED with a message.
    for path, req in [("/px.cloudapi.VizierClusterInfo/CreateCluster", cpb.CreateClusterRequest()),
                      ("/px.cloudapi.ArtifactTracker/GetArtifactList", cpb.GetArtifactListRequest())]:
        code, details = code_of(lambda: raw_call(channel, path, req, cpb.CreateClusterResponse, key))
        check(code == grpc.StatusCode.UNIMPLEMENTED and "Loupe" in details, f"{path} is UNIMPLEMENTED with a message")
    seen["compatible_calls"] = calls


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--addr", required=True, help="the cloud's gRPC address, host:port")
    p.add_argument("--ca", help="CA certificate for TLS (else plaintext)")
    p.add_argument("--key", required=True, help="an API key (px api-key create)")
    p.add_argument("--cluster", required=True, help="the name of the cluster expected healthy")
    p.add_argument("--script", required=True, help="a PxL script")
    p.add_argument("--table", required=True, help="the output table of --script to read")
    p.add_argument("--expect", help="JSON lines of `px run -o json` for --script")
    p.add_argument("--bad-script", help="a PxL script with a mistake")
    p.add_argument("--bad-line", type=int, help="the line of the mistake")
    p.add_argument("--other-key", help="an API key of another org")
    p.add_argument("--email", help="the user of --key")
    p.add_argument("--org", help="the org of --key")
    p.add_argument("--bundled", default="px/http_data", help="a bundled script's name")
    p.add_argument("--bundled-file", help="that script's text")
    p.add_argument("--bench", action="store_true", help="only time results() plain and encrypted")
    args = p.parse_args()
    seen = {}

    clusters = client(args, args.key).list_healthy_clusters()
    named = [c for c in clusters if c.name() == args.cluster]
    check(len(named) == 1, f"list_healthy_clusters() lists {args.cluster!r}: {[c.name() for c in clusters]}")
    cluster_id = named[0].id
    seen["cluster_id"] = cluster_id

    if args.bench:
        for encrypt in (False, True):
            start = time.monotonic()
            rows = run_rows(args, args.key, cluster_id, encrypt)
            took = time.monotonic() - start
            seen["encrypted" if encrypt else "plain"] = {"rows": len(rows), "seconds": round(took, 3),
                                                          "rows_per_s": round(len(rows) / took)}
        print(json.dumps(seen))
        return

    expected = [json.loads(line) for line in open(args.expect) if line.strip()]
    for e in expected:
        e.pop("_tableName", None)
    for encrypt in (False, True):
        rows = [row_as_px_json(r) for r in run_rows(args, args.key, cluster_id, encrypt)]
        check(canonical(rows) == canonical(expected),
              f"results({args.table!r}) (use_encryption={encrypt}) equals px run: {len(rows)} vs {len(expected)} rows")
    seen["rows"] = len(expected)

    conn = client(args, args.key).connect_to_cluster(cluster_id)
    try:
        list(conn.prepare_script(open(args.bad_script).read()).results("output"))
        check(False, "a script with a mistake raises PxLError")
    except pxapi.PxLError as e:
        check(f"PxL, line {args.bad_line}," in str(e), f"PxLError names line {args.bad_line}: {e}")
        seen["pxl_error"] = str(e)

    if args.other_key:
        others = client(args, args.other_key).list_healthy_clusters()
        check(cluster_id not in [c.id for c in others], "another org's key does not see the cluster")
        try:
            client(args, args.other_key).connect_to_cluster(cluster_id)
            check(False, "another org's key cannot reach the cluster")
        except grpc.RpcError as e:
            check(e.code() == grpc.StatusCode.NOT_FOUND, f"another org's key gets NOT_FOUND: {e.code()}")
        seen["other_org_clusters"] = len(others)

    compatibility(args, cluster_id, seen)
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
