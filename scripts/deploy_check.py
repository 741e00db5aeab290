"""Offline checks of the Kubernetes manifests under deploy/, run by scripts/deploy-check.sh.

Every overlay is rendered with `kubectl kustomize` and each object is validated against the Kubernetes schemas
(kubernetes-validate, strict) or, for the CRDs we use (cert-manager's Certificate, the Prometheus Operator's
ServiceMonitor), against the schemas kept in deploy/schemas. Then the rules a cluster would only reveal at
runtime: every long-running container has probes, requests and limits; every Secret and ConfigMap referenced is
created by the manifests, by an init-secrets Job (`--k8s-secret NAME`) or declared as made by the operator
(`loupe.dev/made-by-operator`); Services select pods and name ports that exist; a PodDisruptionBudget guards every
workload with more than one replica and none with one (it would block node drains); the domain is set in one
place. In the vizier: the metadata service's RBAC is read-only (list and watch of pods, services, namespaces,
nodes, endpoints, replica sets and deployments, nothing more), and every address a container is given of the
form SERVICE:PORT (the broker, the metadata service) is a Service of the manifests with that port. The rules
are also run on broken copies of the manifests, so that each one is shown to fail.

With --loupe and --px (built binaries), the PEM of deploy/vizier also runs here as the DaemonSet runs it: as
root with exactly the capabilities its securityContext adds (setpriv --bounding-set) and no more, and must trace
HTTP requests made to a local server.

Usage: deploy_check.py [--kubectl PATH] [--loupe target/debug/loupe --px target/debug/px]
"""

import argparse
import copy
import json
import pathlib
import re
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import jsonschema
import kubernetes_validate
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.32.0"
WORKLOADS = ("Deployment", "StatefulSet", "DaemonSet")
CRD_SCHEMAS = {
    ("cert-manager.io/v1", "Certificate"): "certificate.cert-manager.io.v1.json",
    ("monitoring.coreos.com/v1", "ServiceMonitor"): "servicemonitor.monitoring.coreos.com.v1.json",
}


def overlays():
    """Every kustomization that is meant to be applied: each overlay, and bases that have no overlays."""
    found = []
    for kfile in sorted(DEPLOY.rglob("kustomization.yaml")):
        d = kfile.parent
        if d.name == "base" and (d.parent / "overlays").is_dir():
            continue
        found.append(d)
    return found


def render(kubectl, path):
    out = subprocess.run([kubectl, "kustomize", str(path)], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"error: kubectl kustomize {path.relative_to(ROOT)} failed:\n{out.stderr}")
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def name_of(obj):
    return f"{obj['kind']}/{obj['metadata']['name']}"


def validate_schema(obj):
    key = (obj.get("apiVersion"), obj.get("kind"))
    if key in CRD_SCHEMAS:
        schema = json.loads((DEPLOY / "schemas" / CRD_SCHEMAS[key]).read_text())
        errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(obj), key=lambda e: list(e.path))
        return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors]
    try:
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
    except kubernetes_validate.ValidationError as e:
        return [f"{'.'.join(map(str, e.path))}: {e.message}"]
    except kubernetes_validate.SchemaNotFoundError:
        return [f"no schema for {key[0]} {key[1]} (add one to deploy/schemas)"]
    return []


def pod_spec(obj):
    if obj["kind"] in WORKLOADS:
        return obj["spec"]["template"]["spec"]
    if obj["kind"] == "Job":
        return obj["spec"]["template"]["spec"]
    return None


def pod_labels(obj):
    return obj["spec"]["template"]["metadata"].get("labels", {})


def referenced(spec):
    """(kind, name) of every Secret and ConfigMap the pod spec needs."""
    refs = set()
    for c in spec.get("containers", []) + spec.get("initContainers", []):
        for src in c.get("envFrom", []):
            if "secretRef" in src:
                refs.add(("Secret", src["secretRef"]["name"]))
            if "configMapRef" in src:
                refs.add(("ConfigMap", src["configMapRef"]["name"]))
        for env in c.get("env", []):
            vf = env.get("valueFrom", {})
            if "secretKeyRef" in vf:
                refs.add(("Secret", vf["secretKeyRef"]["name"]))
            if "configMapKeyRef" in vf:
                refs.add(("ConfigMap", vf["configMapKeyRef"]["name"]))
    for v in spec.get("volumes", []):
        if "secret" in v:
            refs.add(("Secret", v["secret"]["secretName"]))
        if "configMap" in v:
            refs.add(("ConfigMap", v["configMap"]["name"]))
        for src in v.get("projected", {}).get("sources", []):
            if "secret" in src:
                refs.add(("Secret", src["secret"]["name"]))
            if "configMap" in src:
                refs.add(("ConfigMap", src["configMap"]["name"]))
    return refs


def matches(selector, labels):
    if "matchLabels" in selector or "matchExpressions" in selector:
        ok = all(labels.get(k) == v for k, v in selector.get("matchLabels", {}).items())
        for e in selector.get("matchExpressions", []):
            if e["operator"] == "In":
                ok = ok and labels.get(e["key"]) in e["values"]
        return ok
    return all(labels.get(k) == v for k, v in selector.items())


def check_rules(objs):
    """The runtime rules; returns a list of problems, each naming the object and the one thing to fix."""
    problems = []
    created = {(o["kind"], o["metadata"]["name"]) for o in objs}
    # cert-manager writes each Certificate's Secret.
    created |= {("Secret", o["spec"]["secretName"]) for o in objs if o["kind"] == "Certificate"}
    made_by_jobs = set()
    for o in objs:
        if o["kind"] == "Job":
            for c in pod_spec(o)["containers"]:
                args = c.get("args", [])
                if "--k8s-secret" in args:
                    made_by_jobs.add(("Secret", args[args.index("--k8s-secret") + 1]))
    for o in objs:
        spec = pod_spec(o)
        if spec is None:
            continue
        # `loupe.dev/made-by-operator: Secret/a,ConfigMap/b`: made by hand out of Git (credentials, the cloud's CA).
        user_made = {
            tuple(item.strip().split("/", 1))
            for item in o["metadata"].get("annotations", {}).get("loupe.dev/made-by-operator", "").split(",")
            if "/" in item
        }
        for ref in sorted(referenced(spec)):
            if ref not in created and ref not in made_by_jobs and ref not in user_made:
                problems.append(f"{name_of(o)}: {ref[0]} {ref[1]} is referenced but never created")
        for c in spec["containers"]:
            where = f"{name_of(o)} container {c['name']}"
            res = c.get("resources", {})
            for part in ("requests", "limits"):
                for what in ("cpu", "memory"):
                    if what not in res.get(part, {}):
                        problems.append(f"{where}: no {part}.{what}")
            if o["kind"] in WORKLOADS:
                for probe in ("readinessProbe", "livenessProbe"):
                    if probe not in c:
                        problems.append(f"{where}: no {probe}")
            sc = c.get("securityContext", {})
            if sc.get("privileged"):
                problems.append(f"{where}: privileged (grant capabilities instead)")
            if sc.get("allowPrivilegeEscalation", True):
                problems.append(f"{where}: allowPrivilegeEscalation is not false")
    # Services select pods, and their named target ports exist on them.
    pods = [(o, pod_labels(o), pod_spec(o)) for o in objs if o["kind"] in WORKLOADS]
    for s in (o for o in objs if o["kind"] == "Service"):
        if s["spec"].get("type") == "ExternalName":
            continue
        sel = s["spec"].get("selector", {})
        selected = [(o, spec) for o, labels, spec in pods if sel and matches(sel, labels)]
        if not selected:
            problems.append(f"{name_of(s)}: selects no pod")
            continue
        for p in s["spec"].get("ports", []):
            tp = p.get("targetPort")
            if isinstance(tp, str):
                names = {port.get("name") for _, spec in selected for c in spec["containers"] for port in c.get("ports", [])}
                if tp not in names:
                    problems.append(f"{name_of(s)}: targetPort {tp} is not a port of the pods it selects")
    # Where ServiceMonitors exist (prod), every workload's `metrics` port is scraped: a Service with a `metrics`
    # port selects the pods, and a ServiceMonitor selects that Service.
    monitors = [o for o in objs if o["kind"] == "ServiceMonitor"]
    if monitors:
        services = [o for o in objs if o["kind"] == "Service" and o["spec"].get("selector")]
        for o, labels, spec in pods:
            if not any(p.get("name") == "metrics" for c in spec["containers"] for p in c.get("ports", [])):
                continue
            scraped = any(
                matches(s["spec"]["selector"], labels)
                and any(p.get("name") == "metrics" for p in s["spec"].get("ports", []))
                and any(matches(m["spec"]["selector"], s["metadata"].get("labels", {})) for m in monitors)
                for s in services
            )
            if not scraped:
                problems.append(f"{name_of(o)}: its metrics port is scraped by no ServiceMonitor")
    # PodDisruptionBudgets: where more than one replica runs, and never on a single replica.
    pdbs = [o for o in objs if o["kind"] == "PodDisruptionBudget"]
    for o, labels, _ in pods:
        if o["kind"] == "DaemonSet":
            continue
        replicas = o["spec"].get("replicas", 1)
        guarded = [p for p in pdbs if matches(p["spec"]["selector"], labels)]
        if replicas > 1 and not guarded:
            problems.append(f"{name_of(o)}: {replicas} replicas and no PodDisruptionBudget")
        if replicas <= 1 and guarded:
            problems.append(f"{name_of(o)}: a PodDisruptionBudget on a single replica blocks node drains")
    return problems


# What the metadata service may do, and all it needs: read-only watches.
METADATA_READS = {
    ("", "pods"), ("", "services"), ("", "namespaces"), ("", "nodes"), ("", "endpoints"),
    ("apps", "replicasets"), ("apps", "deployments"),
}
# Environment variables holding another component's address.
ADDRESS_VARS = ("LOUPE_BROKER", "LOUPE_METADATA_ADDR", "LOUPE_QUERY_ADDR")


def check_vizier(objs):
    """The vizier's rules: the metadata service's RBAC and the addresses its components are given."""
    problems = []
    meta = next((o for o in objs if o["kind"] == "Deployment" and "metadata" in pod_spec(o)["containers"][0].get("args", [])), None)
    if meta is None:
        return problems
    account = pod_spec(meta).get("serviceAccountName", "default")
    roles = {(o["kind"], o["metadata"]["name"]): o for o in objs if o["kind"] in ("Role", "ClusterRole")}
    granted = set()
    for b in (o for o in objs if o["kind"] in ("RoleBinding", "ClusterRoleBinding")):
        if not any(s.get("kind") == "ServiceAccount" and s.get("name") == account for s in b.get("subjects", [])):
            continue
        role = roles.get((b["roleRef"]["kind"], b["roleRef"]["name"]))
        if role is None:
            problems.append(f"{name_of(b)}: binds {b['roleRef']['kind']} {b['roleRef']['name']}, which is not created")
            continue
        for rule in role.get("rules", []):
            verbs = set(rule.get("verbs", []))
            if not verbs <= {"list", "watch"}:
                problems.append(f"{name_of(role)}: the metadata service may {sorted(verbs - {'list', 'watch'})}; "
                                "give it list and watch only")
            for group in rule.get("apiGroups", []):
                for res in rule.get("resources", []):
                    if (group, res) not in METADATA_READS:
                        problems.append(f"{name_of(role)}: the metadata service may read {group or 'core'}/{res}, "
                                        "which it does not watch")
                    elif {"list", "watch"} <= verbs:
                        granted.add((group, res))
    for group, res in sorted(METADATA_READS - granted):
        problems.append(f"{name_of(meta)}: its service account {account} cannot list and watch {group or 'core'}/{res}")
    services = {(o["metadata"]["name"], p["port"]) for o in objs if o["kind"] == "Service" for p in o["spec"].get("ports", [])}
    for o in objs:
        spec = pod_spec(o)
        if spec is None:
            continue
        for c in spec["containers"]:
            for e in c.get("env", []):
                if e["name"] in ADDRESS_VARS and "value" in e:
                    host, _, port = e["value"].rpartition(":")
                    if host.startswith("$(") or not port.isdigit():
                        continue
                    name = host.split(".")[0]
                    if (name, int(port)) not in services:
                        problems.append(f"{name_of(o)}: {e['name']}={e['value']} is no Service of the manifests")
    return problems


def check_domain(kubectl, overlay, objs):
    """The domain is set once: changing it where the overlay sets it changes every name in the output."""
    config = [o for o in objs if o["kind"] == "ConfigMap" and "LOUPE_DOMAIN" in o.get("data", {})]
    if not config:
        return []
    old = config[0]["data"]["LOUPE_DOMAIN"]
    new = "changed-once.example.org"
    # Where the overlay sets it: its own kustomization, or (for an overlay that keeps the default) the base's
    # ConfigMap. Either way the value must be written exactly once.
    source = overlay / "kustomization.yaml"
    if old not in source.read_text():
        return []  # the base's default; checked through the overlays that set their own
    count = source.read_text().count(old)
    if count != 1:
        return [f"the domain {old} is written {count} times in {source.relative_to(ROOT)}; write it once"]
    with tempfile.TemporaryDirectory(dir=overlay.parent) as tmp:
        t = pathlib.Path(tmp)
        for f in overlay.iterdir():
            if f.is_file():
                (t / f.name).write_text(f.read_text().replace(old, new))
        changed = render(kubectl, t)
    text = yaml.safe_dump_all(changed)
    problems = []
    if old in text:
        lines = [line.strip() for line in text.splitlines() if old in line]
        problems.append(f"the domain {old} is still named after changing it in one place: {lines[:3]}")
    for o in changed:
        if o["kind"] == "Certificate":
            names = o["spec"].get("dnsNames", []) + [o["spec"].get("commonName", new)]
            if not all(n == new or n.endswith("." + new) for n in names):
                problems.append(f"{name_of(o)}: names {names} do not follow the domain")
        spec = pod_spec(o)
        if spec is None:
            continue
        for c in spec["containers"]:
            args = c.get("args", [])
            if "--domain" in args or any(e.get("name") == "LOUPE_DOMAIN" for e in c.get("env", [])):
                problems.append(f"{name_of(o)}: sets the domain itself instead of reading it from loupe-config")
            if "init-secrets" in args and not any(
                f.get("configMapRef", {}).get("name") == config[0]["metadata"]["name"] for f in c.get("envFrom", [])
            ) and "--only" not in args:
                problems.append(f"{name_of(o)}: init-secrets does not read the domain from loupe-config")
    if not any(o["kind"] == "Certificate" for o in changed) and new not in text:
        problems.append("the changed domain appears nowhere in the output")
    return problems


def self_test(objs):
    """Each rule must fail on a copy of the manifests broken on purpose."""
    def first(kind):
        return next(i for i, o in enumerate(objs) if o["kind"] == kind)

    cases = []
    broken = copy.deepcopy(objs)
    del pod_spec(broken[first("Deployment")])["containers"][0]["readinessProbe"]
    cases.append(("a missing probe", broken, "no readinessProbe"))
    broken = copy.deepcopy(objs)
    del pod_spec(broken[first("Deployment")])["containers"][0]["resources"]["limits"]
    cases.append(("a missing limit", broken, "no limits.memory"))
    broken = copy.deepcopy(objs)
    pod_spec(broken[first("Deployment")])["containers"][0].setdefault("envFrom", []).append(
        {"secretRef": {"name": "never-made"}}
    )
    cases.append(("a Secret never created", broken, "Secret never-made is referenced but never created"))
    broken = copy.deepcopy(objs)
    pod_spec(broken[first("Deployment")])["containers"][0].setdefault("envFrom", []).append(
        {"configMapRef": {"name": "no-such-config"}}
    )
    cases.append(("a ConfigMap never created", broken, "ConfigMap no-such-config is referenced but never created"))
    broken = copy.deepcopy(objs)
    broken[first("Deployment")]["spec"]["replicas"] = 3
    cases.append(("replicas without a PDB", broken, "replicas and no PodDisruptionBudget"))
    failures = []
    for what, b, expected in cases:
        if not any(expected in p for p in check_rules(b)):
            failures.append(f"the rules did not catch {what} (expected a problem containing {expected!r})")
    return failures


def self_test_vizier(objs):
    """The vizier's rules must fail on copies broken on purpose."""
    cases = []
    broken = copy.deepcopy(objs)
    role = next(o for o in broken if o["kind"] == "ClusterRole")
    role["rules"].append({"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"]})
    cases.append(("a metadata service reading Secrets", broken, "may ['get']"))
    broken = copy.deepcopy(objs)
    role = next(o for o in broken if o["kind"] == "ClusterRole")
    role["rules"] = [r for r in role["rules"] if "apps" not in r.get("apiGroups", [])]
    cases.append(("a metadata service that cannot watch deployments", broken, "cannot list and watch apps/deployments"))
    broken = copy.deepcopy(objs)
    ds = next(o for o in broken if o["kind"] == "DaemonSet")
    for e in pod_spec(ds)["containers"][0]["env"]:
        if e["name"] == "LOUPE_BROKER":
            e["value"] = "no-such-broker:50600"
    cases.append(("a PEM pointed at a broker that does not exist", broken, "LOUPE_BROKER=no-such-broker:50600"))
    failures = []
    for what, b, expected in cases:
        if not any(expected in p for p in check_vizier(b)):
            failures.append(f"the rules did not catch {what} (expected a problem containing {expected!r})")
    return failures


def self_test_monitors(objs):
    """The scraping rule must fail when one component's ServiceMonitor is missing."""
    broken = [o for o in copy.deepcopy(objs) if name_of(o) != "ServiceMonitor/loupe-proxy"]
    if len(broken) == len(objs):
        return ["the monitoring self-test found no ServiceMonitor/loupe-proxy to remove"]
    if not any("Deployment/proxy: its metrics port is scraped by no ServiceMonitor" in p for p in check_rules(broken)):
        return ["the rules did not catch a component no ServiceMonitor scrapes"]
    return []


_next_port = [os.getpid() % 2000]


def free_port():
    """A loopback port free now, from 10000-11999: below Linux's ephemeral range (32768-60999), where the
    outgoing connections of the replayed services take their local ports, so that none takes it before the
    process it is meant for binds it (and below the Rust tests' 12000-31999); never the same one twice."""
    for _ in range(2000):
        port = 10000 + _next_port[0] % 2000
        _next_port[0] += 1
        with socket.socket() as tcp, socket.socket(type=socket.SOCK_DGRAM) as udp:
            try:
                tcp.bind(("127.0.0.1", port))
                udp.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise SystemExit("no free loopback port between 10000 and 11999")


def check_pem_capabilities(objs, loupe, px):
    """Runs the DaemonSet's PEM with only its capabilities and checks that it attaches and traces."""
    ds = next(o for o in objs if o["kind"] == "DaemonSet")
    c = ds["spec"]["template"]["spec"]["containers"][0]
    sc = c["securityContext"]
    if sc.get("capabilities", {}).get("drop") != ["ALL"]:
        return [f"{name_of(ds)}: must drop ALL capabilities and add back only what it needs"]
    caps = ",".join("+" + cap.lower() for cap in sc["capabilities"].get("add", []))
    env = {e["name"]: e["value"] for e in c.get("env", []) if "value" in e}
    with tempfile.TemporaryDirectory() as data:
        token = pathlib.Path(data) / "token"
        token.write_text(os.urandom(32).hex())
        token.chmod(0o600)
        query, metrics, web = free_port(), free_port(), free_port()
        cmd = ["setpriv", f"--bounding-set=-all,{caps}", "--", loupe, *c["args"]]
        cmd += ["--listen", f"127.0.0.1:{query}", "--metrics-listen", f"127.0.0.1:{metrics}"]
        cmd += ["--query-token-file", str(token), "--data-dir", data]
        cmd += ["--memory-budget", env.get("LOUPE_MEMORY_BUDGET_MB", "512")]
        print(f"  PEM as the DaemonSet grants it: {' '.join(cmd[:3])} ({sc['capabilities']['add']})")
        log = open(pathlib.Path(data) / "pem.log", "w")
        pem = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        server = subprocess.Popen(
            ["/usr/bin/python3", "-m", "http.server", str(web), "--bind", "127.0.0.1", "--directory", data],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        try:
            ready = False
            for _ in range(120):
                if pem.poll() is not None:
                    break
                try:
                    ready = urllib.request.urlopen(f"http://127.0.0.1:{metrics}/readyz", timeout=2).status == 200
                except OSError:
                    pass
                if ready:
                    break
                time.sleep(0.5)
            if not ready:
                log.close()
                return [f"{name_of(ds)}: the PEM with only {caps} did not become ready:\n"
                        + (pathlib.Path(data) / "pem.log").read_text()[-3000:]]
            requests = 5
            for i in range(requests):
                for _ in range(20):
                    try:
                        urllib.request.urlopen(f"http://127.0.0.1:{web}/caps-check-{i}", timeout=5)
                    except urllib.error.HTTPError:
                        break  # a 404 is an answer: the request was made
                    except OSError:
                        time.sleep(0.2)
            script = pathlib.Path(data) / "q.pxl"
            script.write_text(
                "import px\n"
                "df = px.DataFrame(table='http_events', start_time='-5m')\n"
                "df = df[px.contains(df.req_path, '/caps-check-')]\n"
                "df = df.groupby('req_path').agg(n=('latency', px.count))\n"
                "px.display(df, 'paths')\n"
            )
            seen = set()
            for _ in range(30):
                out = subprocess.run(
                    [px, "run", "-f", str(script), "-o", "json", "--cloud-addr", f"127.0.0.1:{query}",
                     "--token-file", str(token)],
                    capture_output=True, text=True,
                )
                seen = {line for line in out.stdout.splitlines() if "/caps-check-" in line}
                if len(seen) >= requests:
                    break
                time.sleep(1)
            if len(seen) < requests:
                return [f"{name_of(ds)}: with only {caps} the PEM traced {len(seen)} of {requests} paths: "
                        f"{out.stdout[-500:]} {out.stderr[-500:]}"]
            print(f"  PEM with only {caps}: ready, and traced {len(seen)} of {requests} requests")
            return []
        finally:
            for proc in (pem, server):
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            log.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubectl", default="kubectl")
    parser.add_argument("--loupe", help="the loupe binary: also run the PEM under the DaemonSet's capabilities")
    parser.add_argument("--px", help="the px binary, to query that PEM")
    args = parser.parse_args()
    version = subprocess.run([args.kubectl, "version", "--client"], capture_output=True, text=True)
    if version.returncode != 0:
        raise SystemExit(f"error: {args.kubectl} is missing or broken: install kubectl (with kustomize v5)")
    print(version.stdout.strip().replace("\n", "; "))
    failed = []
    self_tested = False
    for overlay in overlays():
        rel = overlay.relative_to(ROOT)
        objs = render(args.kubectl, overlay)
        problems = []
        for o in objs:
            problems += [f"{name_of(o)}: {e}" for e in validate_schema(o)]
        problems += check_rules(objs)
        problems += check_vizier(objs)
        problems += check_domain(args.kubectl, overlay, objs)
        if any(o["kind"] == "ClusterRole" and "vizier-metadata" in o["metadata"]["name"] for o in objs):
            problems += self_test_vizier(objs)
        if args.loupe and any(o["kind"] == "DaemonSet" for o in objs):
            problems += check_pem_capabilities(objs, args.loupe, args.px)
        if any(o["kind"] == "ServiceMonitor" for o in objs):
            problems += self_test_monitors(objs)
        if not self_tested and any(o["kind"] == "Deployment" for o in objs):
            problems += self_test(objs)
            self_tested = True
        status = "ok" if not problems else f"{len(problems)} problem(s)"
        print(f"{rel}: {len(objs)} objects, {status}")
        for p in problems:
            print(f"  {rel}: {p}")
        failed += problems
    if failed:
        raise SystemExit(f"deploy-check: {len(failed)} problem(s)")
    print("deploy-check: every overlay renders, validates and follows the rules")


if __name__ == "__main__":
    main()
