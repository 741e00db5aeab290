"""Local replay of the rendered manifests: the wiring of deploy/ proven where no cluster exists.

The cloud overlay is rendered with `kubectl kustomize`, and each Deployment's and Job's command, args and env are
run as local processes (the `loupe` binary built here standing in for the image), against real PostgreSQL, NATS
and Redis started on loopback from Debian's packages, with the StatefulSets' own settings. Service names become
loopback ports: `https://auth:50100` in an env value reaches the local `auth`, whose `0.0.0.0:50100` listener was
moved to that port. Secret and ConfigMap volumes become directories with the same files; the Secret
`loupe-secrets` is written by the real `init-secrets` Job through a small Kubernetes API on loopback (the calls
and answers of a real API server for one Secret), and read back from there for the mounts and `secretKeyRef`s.

Then, as a user would: `px auth login` through the proxy (https, the generated CA), the forced password change,
`px deploy-key create`, and a vizier started from the rendered vizier manifests (query broker, a Kelvin, PEM and
connector, with the deploy key and the cloud's CA as the operator would create them), until `px get viziers` shows
it connected and a script answers through it. The gateway's hops to auth, profile and scripts are TLS with the
internal certificate init-secrets issued, and so is the proxy's hop to the API: checked directly too (the certificate names the services and chains to
the CA; another CA's client and plain HTTP/2 get nothing). The org's export default (`px export set` with a
header from a file) is sealed in Postgres by the scripts service and opened by VZConn for the vizier: a script's
`px.export` without an endpoint reaches an OTLP/HTTP receiver on loopback with that header.
Last, `loupe doctor` with the services' settings passes every check, and fails the right one for each fault put
in on purpose: a wrong domain, an address without its port, a stopped NATS.

Usage: deploy_replay.py --loupe target/debug/loupe --px target/debug/px [--overlay deploy/cloud/overlays/dev]
"""

import argparse
import base64
import http.server
import json
import os
import pathlib
import re
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import yaml

# The checks' own rendering and port picking (this script runs beside it, in the same venv).
import deploy_check
from deploy_check import free_port

ROOT = pathlib.Path(__file__).resolve().parent.parent
PG_BIN = pathlib.Path(os.environ.get("LOUPE_PG_BIN", "/usr/lib/postgresql/15/bin"))
NAMESPACE_DOMAINS = ("", ".{ns}", ".{ns}.svc", ".{ns}.svc.cluster.local")


def render(path):
    return deploy_check.render("kubectl", path)


class KubeApi(http.server.ThreadingHTTPServer):
    """The Kubernetes API's Secret calls, as a real API server answers them, for one namespace."""

    def __init__(self, token):
        self.token = token
        self.secrets = {}
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), KubeHandler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}"

    def data(self, ns, name):
        with self.lock:
            secret = self.secrets.get((ns, name))
        if secret is None:
            return None
        return {k: base64.b64decode(v) for k, v in secret.get("data", {}).items()}


class KubeHandler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def status(self, code, reason, message):
        self.reply(code, {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                          "message": message, "reason": reason, "code": code})

    def route(self, method):
        if self.headers.get("Authorization") != f"Bearer {self.server.token}":
            return self.status(401, "Unauthorized", "Unauthorized")
        m = re.fullmatch(r"/api/v1/namespaces/([a-z0-9-]+)/secrets(?:/([a-z0-9.-]+))?", self.path)
        if not m:
            return self.status(404, "NotFound", "the server could not find the requested resource")
        ns, name = m.group(1), m.group(2)
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        with self.server.lock:
            if method == "GET" and name:
                s = self.server.secrets.get((ns, name))
                return self.reply(200, s) if s else self.status(404, "NotFound", f'secrets "{name}" not found')
            if method == "POST" and not name:
                name = body["metadata"]["name"]
                if (ns, name) in self.server.secrets:
                    return self.status(409, "AlreadyExists", f'secrets "{name}" already exists')
                self.server.secrets[(ns, name)] = body
                return self.reply(201, body)
            if method == "PATCH" and name:
                s = self.server.secrets.get((ns, name))
                if not s:
                    return self.status(404, "NotFound", f'secrets "{name}" not found')
                s.setdefault("data", {}).update(body.get("data", {}))
                return self.reply(200, s)
        return self.status(405, "MethodNotAllowed", "method not allowed")

    def do_GET(self):
        self.route("GET")

    def do_POST(self):
        self.route("POST")

    def do_PATCH(self):
        self.route("PATCH")


class Replay:
    def __init__(self, loupe, px, work):
        self.loupe = str(pathlib.Path(loupe).resolve())
        self.px_bin = str(pathlib.Path(px).resolve())
        self.work = work
        self.procs = []
        self.ports = {}  # (workload, containerPort) -> local port
        self.services = {}  # (service name, port) -> local port
        self.api_token = os.urandom(16).hex()
        (work / "k8s-token").write_text(self.api_token)
        self.kube = KubeApi(self.api_token)

    # -- addresses -------------------------------------------------------------------------------------------
    def map_ports(self, objs, ns):
        workloads = [o for o in objs if o["kind"] in ("Deployment", "StatefulSet", "DaemonSet")]
        for o in workloads:
            for c in o["spec"]["template"]["spec"]["containers"]:
                for p in c.get("ports", []):
                    self.ports[(o["metadata"]["name"], p["containerPort"])] = free_port()
        for s in (o for o in objs if o["kind"] == "Service"):
            sel = s["spec"].get("selector", {})
            target = next((o for o in workloads
                           if sel and all(o["spec"]["template"]["metadata"]["labels"].get(k) == v
                                          for k, v in sel.items())), None)
            if target is None:
                continue
            for p in s["spec"]["ports"]:
                tp = p.get("targetPort", p["port"])
                if isinstance(tp, str):
                    tp = next(cp["containerPort"] for c in target["spec"]["template"]["spec"]["containers"]
                              for cp in c.get("ports", []) if cp.get("name") == tp)
                self.services[(s["metadata"]["name"], p["port"])] = self.ports[(target["metadata"]["name"], tp)]
        self.ns = ns

    def rewrite(self, value, workload):
        """Service addresses to loopback ports, the workload's own wildcard listeners to its local ports."""
        for (name, port), local in self.services.items():
            for suffix in NAMESPACE_DOMAINS:
                host = name + suffix.format(ns=self.ns)
                value = re.sub(rf"(?<![\w.-]){re.escape(host)}:{port}(?!\d)", f"127.0.0.1:{local}", value)
        for (w, port), local in self.ports.items():
            if w == workload:
                value = re.sub(rf"0\.0\.0\.0:{port}(?!\d)", f"127.0.0.1:{local}", value)
        return value

    # -- processes -------------------------------------------------------------------------------------------
    def start(self, name, argv, env, cwd=None, user=None):
        log = open(self.work / f"{name}.log", "w")
        if user:
            argv = ["runuser", "-u", user, "--", *argv]
        proc = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=cwd)
        self.procs.append((name, proc))
        return proc

    def log_tail(self, name, n=2000):
        path = self.work / f"{name}.log"
        return path.read_text(errors="replace")[-n:] if path.exists() else ""

    def stop_all(self):
        for _, proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for name, proc in reversed(self.procs):
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
        if hasattr(self, "pgdata"):
            subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "pg_ctl"), "-D", str(self.pgdata),
                            "stop", "-m", "immediate"], capture_output=True)
        self.kube.shutdown()

    # -- the pod environment ---------------------------------------------------------------------------------
    def pod(self, obj, objs, container=0, extra_args=()):
        """argv and env of a workload's or Job's container, with its volumes as local directories."""
        name = obj["metadata"]["name"]
        spec = obj["spec"]["template"]["spec"]
        c = spec["containers"][container]
        configmaps = {o["metadata"]["name"]: o.get("data", {}) for o in objs if o["kind"] == "ConfigMap"}
        mounts = {}
        for v in spec.get("volumes", []):
            d = self.work / "volumes" / name / v["name"]
            d.mkdir(parents=True, exist_ok=True)
            os.chmod(d, 0o700)
            files = {}
            if "secret" in v:
                files = self.secret_files(v["secret"]["secretName"], v["secret"].get("items"))
            elif "configMap" in v:
                files = {k: val.encode() for k, val in self.configmap(v["configMap"]["name"], configmaps).items()}
            elif "projected" in v:
                for src in v["projected"]["sources"]:
                    if "secret" in src:
                        files.update(self.secret_files(src["secret"]["name"], src["secret"].get("items")))
            for fname, content in files.items():
                f = d / fname
                f.write_bytes(content)
                os.chmod(f, 0o600)
            mounts[v["name"]] = d
        paths = {m["mountPath"]: mounts[m["name"]] for m in c.get("volumeMounts", [])}

        def local(value):
            for mount in sorted(paths, key=len, reverse=True):
                value = value.replace(mount, str(paths[mount]))
            return self.rewrite(value, name)

        env = {"PATH": os.environ["PATH"], "HOME": str(self.work), "RUST_LOG": "info"}
        for src in c.get("envFrom", []):
            if "configMapRef" in src:
                env.update(self.configmap(src["configMapRef"]["name"], configmaps))
        for e in c.get("env", []):
            if "value" in e:
                env[e["name"]] = re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), e["value"])
            elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "status.podIP":
                # The pod's own address: `$(POD_IP):PORT` becomes one of its listeners, mapped below to its local port.
                env[e["name"]] = "0.0.0.0"
            elif e.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "spec.nodeName":
                env[e["name"]] = "replay-node"
            elif "secretKeyRef" in e.get("valueFrom", {}):
                ref = e["valueFrom"]["secretKeyRef"]
                env[e["name"]] = self.secret_files(ref["name"], [{"key": ref["key"], "path": "x"}])["x"].decode()
        env = {k: local(v) for k, v in env.items()}
        argv = [self.loupe if a == "/usr/local/bin/loupe" else a for a in c.get("command", [])]
        argv += [local(a) for a in c.get("args", [])] + list(extra_args)
        return argv, env

    def configmap(self, name, configmaps):
        if name in configmaps:
            return configmaps[name]
        if name == "loupe-cloud-ca":  # made by the operator from the cloud's Secret (docs/deploy.md)
            return {"ca.crt": self.kube.data("plc", "loupe-secrets")["ca.crt"].decode()}
        raise SystemExit(f"replay: ConfigMap {name} is neither rendered nor made by the operator")

    def secret_files(self, name, items):
        data = None
        for ns in ("plc", "pixie-system"):
            data = self.kube.data(ns, name)
            if data is not None:
                break
        if data is None and name in getattr(self, "operator_secrets", {}):
            data = self.operator_secrets[name]
        if data is None:
            raise SystemExit(f"replay: Secret {name} does not exist (yet)")
        if not items:
            return dict(data)
        return {i["path"]: data[i["key"]] for i in items}

    # -- dependencies, as the StatefulSets configure them ------------------------------------------------------
    def start_postgres(self, sts):
        c = sts["spec"]["template"]["spec"]["containers"][0]
        env = {e["name"]: e for e in c["env"]}
        user, db = env["POSTGRES_USER"]["value"], env["POSTGRES_DB"]["value"]
        ref = env["POSTGRES_PASSWORD"]["valueFrom"]["secretKeyRef"]
        password = self.secret_files(ref["name"], [{"key": ref["key"], "path": "p"}])["p"].decode()
        self.pgdata = self.work / "pgdata"
        sock = self.work / "pgsock"
        for d in (self.pgdata, sock):
            d.mkdir()
            shutil.chown(d, "postgres", "postgres")
        os.chmod(self.work, 0o755)
        pw = self.work / "pgpass"
        pw.write_text(password)
        shutil.chown(pw, "postgres", "postgres")
        os.chmod(pw, 0o600)
        subprocess.run(["runuser", "-u", "postgres", "--", str(PG_BIN / "initdb"), "-D", str(self.pgdata),
                        "-U", user, f"--pwfile={pw}", "-A", "scram-sha-256", "--no-sync"],
                       check=True, capture_output=True)
        port = self.ports[("postgres", 5432)]
        proc = self.start("postgres", [str(PG_BIN / "postgres"), "-D", str(self.pgdata), "-p", str(port),
                                       "-k", str(sock), "-c", "listen_addresses=127.0.0.1"], None, user="postgres")
        env = dict(os.environ, PGPASSWORD=password)
        self.pg = (port, user, db, env)
        for _ in range(100):
            r = subprocess.run([str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", user, "-d", "postgres", "-c",
                                f"CREATE DATABASE {db}"], capture_output=True, text=True, env=env)
            if r.returncode == 0 or "already exists" in r.stderr:
                return
            if proc.poll() is not None:
                break
            time.sleep(0.2)
        raise SystemExit(f"replay: PostgreSQL did not start: {r.stderr}\n{self.log_tail('postgres')}")

    def psql(self, sql):
        """One query's rows on the replayed metastore, as psql prints them unaligned."""
        port, user, db, env = self.pg
        r = subprocess.run([str(PG_BIN / "psql"), "-h", "127.0.0.1", "-p", str(port), "-U", user, "-d", db, "-At",
                            "-c", sql], capture_output=True, text=True, env=env, check=True)
        return r.stdout

    def start_nats(self, sts):
        c = sts["spec"]["template"]["spec"]["containers"][0]
        args = list(c["args"])
        store = self.work / "nats"
        store.mkdir()
        args[args.index("--store_dir") + 1] = str(store)
        args[args.index("--http_port") + 1] = str(self.ports[("nats", 8222)])
        self.start("nats", ["nats-server", *args, "-a", "127.0.0.1", "-p", str(self.ports[("nats", 4222)])], None)
        self.wait_listening("nats", self.ports[("nats", 4222)])

    def container_env(self, c):
        """A StatefulSet container's env with its Secret references read, for the $(VAR)s of its args."""
        env = {}
        for e in c.get("env", []):
            if "value" in e:
                env[e["name"]] = e["value"]
            elif "secretKeyRef" in e.get("valueFrom", {}):
                ref = e["valueFrom"]["secretKeyRef"]
                env[e["name"]] = self.secret_files(ref["name"], [{"key": ref["key"], "path": "x"}])["x"].decode()
        return env

    def start_redis(self, sts):
        c = sts["spec"]["template"]["spec"]["containers"][0]
        env = self.container_env(c)
        args = [re.sub(r"\$\((\w+)\)", lambda m: env.get(m.group(1), m.group(0)), a) for a in c["args"]]
        if "--requirepass" not in args:
            raise SystemExit("replay: the redis StatefulSet runs without a password")
        data = self.work / "redis"
        data.mkdir()
        args[args.index("--dir") + 1] = str(data)
        self.start("redis", ["redis-server", *args, "--bind", "127.0.0.1", "--port",
                             str(self.ports[("redis", 6379)]), "--save", ""], None)
        self.wait_listening("redis", self.ports[("redis", 6379)])

    def wait_listening(self, name, port):
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                return
            except OSError:
                proc = dict(self.procs).get(name)
                if proc is not None and proc.poll() is not None:
                    break
                time.sleep(0.2)
        raise SystemExit(f"replay: {name} does not listen on {port} as the manifest runs it:\n{self.log_tail(name)}")

    def wait_ready(self, name, workload, port):
        url = f"http://127.0.0.1:{self.ports[(workload, port)]}/readyz"
        for _ in range(300):
            try:
                if urllib.request.urlopen(url, timeout=2).status == 200:
                    return
            except OSError:
                pass
            proc = dict(self.procs).get(name)
            if proc is not None and proc.poll() is not None:
                break
            time.sleep(0.3)
        raise SystemExit(f"replay: {name} did not become ready at {url}:\n{self.log_tail(name)}")

    def run_job(self, job, objs, extra_args=()):
        argv, env = self.pod(job, objs, extra_args=extra_args)
        name = job["metadata"]["name"]
        for attempt in range(60):
            r = subprocess.run(argv, env=env, capture_output=True, text=True)
            if r.returncode == 0:
                print(f"  job {name}: ok" + (f" (after {attempt} retries)" if attempt else ""))
                return r.stdout
            time.sleep(0.5)  # as the Job's backoff: a dependency may not be up yet
        raise SystemExit(f"replay: job {name} failed: {r.stdout}\n{r.stderr}")

    def px(self, args, stdin="", check=True):
        env = dict(os.environ, PX_CONFIG_DIR=str(self.work / "px"), PX_CLOUD_ADDR=self.cloud_addr,
                   PX_CA_CERT=str(self.ca_file))
        r = subprocess.run([self.px_bin, *args], input=stdin, capture_output=True, text=True, env=env)
        if check and r.returncode != 0:
            raise SystemExit(f"replay: px {' '.join(args)} failed: {r.stdout}\n{r.stderr}")
        return r


def export_default(r, work):
    """The org's export default set through the split cloud: its header value is sealed at rest by the scripts
    service (`settings-key` from init-secrets), opened by VZConn for the org's vizier, and sent by the Kelvin's
    merge to an OTLP/HTTP receiver with a script's `px.export` that names no endpoint."""
    got = []

    class Otlp(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            n = int(self.headers.get("Content-Length", 0))
            self.rfile.read(n)
            got.append((self.path, self.headers.get("x-api-key"), n))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Otlp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        secret = "replay-key-" + os.urandom(8).hex()
        key = work / "otlp-key"
        key.write_text(secret + "\n")
        os.chmod(key, 0o600)
        r.px(["export", "set", "--url", f"http://127.0.0.1:{server.server_address[1]}",
              "--header-file", f"x-api-key={key}"])
        stored = r.psql("SELECT value FROM org_settings WHERE key = 'export.default'")
        if not stored.strip() or secret in stored:
            raise SystemExit(f"replay: the export header is not sealed at rest: {stored!r}")
        script = work / "export.pxl"
        script.write_text("import px\n"
                          "df = px.GetAgentStatus().agg(n=('agent_id', px.count))\n"
                          "df.time_ = px.now()\n"
                          "df.service = 'replayed'\n"
                          "px.export(df, px.otel.Data(resource={'service.name': df.service},\n"
                          "  data=[px.otel.metric.Gauge(name='replay.agents', value=df.n)]))\n")
        deadline = time.time() + 60
        while True:
            q = r.px(["run", "-c", "replayed", "-f", str(script)], check=False)
            if q.returncode == 0 and any(path.endswith("/v1/metrics") for path, _, _ in got):
                break
            if time.time() > deadline:
                raise SystemExit(f"replay: the org's export default never reached the receiver: {q.stderr} {got}")
            time.sleep(1)
        keys = {k for _, k, _ in got}
        if keys != {secret}:
            raise SystemExit(f"replay: the receiver got x-api-key {keys}, not the org's")
        print("  px export set: the header sealed in Postgres by the scripts service, opened by VZConn; "
              "a script's px.export reached an OTLP/HTTP receiver from the Kelvin with it")
    finally:
        server.shutdown()


def doctor(r, by, cloud):
    """`loupe doctor` against the replayed deployment with the services' own settings: every check passes, then
    each fault put in on purpose (a wrong domain, an address without its port, Redis without its password, a
    stopped NATS) fails its check."""
    _, auth_env = r.pod(by[("Deployment", "auth")], cloud)
    _, vzconn_env = r.pod(by[("Deployment", "vzconn")], cloud)
    env = {"PATH": os.environ["PATH"], "HOME": str(r.work)}
    for key in ("LOUPE_METASTORE_URL", "LOUPE_REDIS_URL", "LOUPE_DOMAIN"):
        if key in auth_env:
            env[key] = auth_env[key]
    env["LOUPE_NATS_URL"] = vzconn_env["LOUPE_NATS_URL"]
    proxy = f"127.0.0.1:{r.services[('cloud-proxy-service', 443)]}"
    vzconn = f"127.0.0.1:{r.services[('vzconn-service', 51800)]}"
    base = [r.loupe, "doctor", "-o", "json", "--ca-cert", str(r.ca_file), "--data-dir", str(r.work / "doctor"),
            "--timeout", "3s", "--vzconn-addr", vzconn]

    def run(*extra, env=env):
        p = subprocess.run([*base, *extra], env=env, capture_output=True, text=True, timeout=120)
        try:
            report = json.loads(p.stdout)
        except ValueError:
            raise SystemExit(f"replay: loupe doctor printed no report: {p.stdout}\n{p.stderr}")
        return p.returncode, {c["check"]: c for c in report["checks"]}, p.stdout

    def expect(what, code, checks, out, failed):
        bad = sorted(n for n, c in checks.items() if (c["status"] == "fail") != (n in failed))
        if code != (1 if failed else 0) or bad:
            raise SystemExit(f"replay: loupe doctor with {what}: exit {code}, unexpected {bad}:\n{out}")

    code, checks, out = run("--cloud-addr", proxy)
    expect("the replayed deployment", code, checks, out, set())
    if any(c["status"] != "ok" for c in checks.values()):
        raise SystemExit(f"replay: loupe doctor skipped or warned on a whole deployment:\n{out}")
    code, checks, out = run("--cloud-addr", proxy, "--domain", "wrong.example")
    expect("a wrong domain", code, checks, out, {"certificate", "vzconn"})
    code, checks, out = run("--cloud-addr", "127.0.0.1")
    expect("an address without its port", code, checks, out, {"address"})
    no_password = dict(env, LOUPE_REDIS_URL=re.sub(r"//:[^@]*@", "//", env["LOUPE_REDIS_URL"]))
    code, checks, out = run("--cloud-addr", proxy, env=no_password)
    expect("Redis without its password", code, checks, out, {"redis"})
    nats = next(proc for name, proc in r.procs if name == "nats")
    nats.terminate()
    nats.wait(timeout=15)
    code, checks, out = run("--cloud-addr", proxy)
    expect("NATS stopped", code, checks, out, {"nats"})
    print("  loupe doctor: every check passes; a wrong domain, a missing port, Redis without its password and a "
          "stopped NATS each fail theirs")


def internal_tls(r, ca_pem, ns):
    """The gateway's hops are TLS: each service's listener presents a certificate naming it, under the CA."""
    ca = r.work / "internal-ca.crt"
    ca.write_bytes(ca_pem)
    for name, port in (("api-service", 51200), ("auth", 50100), ("profile", 51500), ("scripts", 52000),
                       ("vzconn-internal", 51801)):
        local = r.services[(name, port)]
        trusted = ssl.create_default_context(cafile=str(ca))
        trusted.set_alpn_protocols(["h2"])
        for host in (name, f"{name}.{ns}.svc.cluster.local"):
            with socket.create_connection(("127.0.0.1", local), timeout=5) as raw:
                with trusted.wrap_socket(raw, server_hostname=host) as tls:
                    if tls.selected_alpn_protocol() != "h2":
                        raise SystemExit(f"replay: {name} did not offer h2 over TLS")
        # The system's authorities do not know the internal CA: the handshake fails.
        try:
            with socket.create_connection(("127.0.0.1", local), timeout=5) as raw:
                with ssl.create_default_context().wrap_socket(raw, server_hostname=name):
                    pass
            raise SystemExit(f"replay: {name} was trusted without the internal CA")
        except ssl.SSLCertVerificationError:
            pass
        # Plain HTTP/2 (the client preface) gets no HTTP/2 answer: a TLS alert or a closed connection.
        with socket.create_connection(("127.0.0.1", local), timeout=5) as raw:
            raw.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes([0, 0, 0, 4, 0, 0, 0, 0, 0]))
            try:
                answer = raw.recv(64)
            except (ConnectionResetError, socket.timeout):
                answer = b""
            if answer[:1] not in (b"", b"\x15"):
                raise SystemExit(f"replay: {name} answered plain HTTP/2: {answer!r}")
    log = (r.work / "api.log").read_text()
    if "internal gRPC over TLS" not in log:
        raise SystemExit("replay: the gateway did not log the TLS mode of its internal hops")
    if "forwarding to the API over TLS" not in (r.work / "proxy.log").read_text():
        raise SystemExit("replay: the proxy did not log that it reaches the API over TLS")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--loupe", required=True)
    parser.add_argument("--px", required=True)
    parser.add_argument("--overlay", default="deploy/cloud/overlays/dev")
    parser.add_argument("--vizier", default="deploy/vizier/base")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    args = parser.parse_args()

    work = pathlib.Path(tempfile.mkdtemp(prefix="loupe-replay-"))
    r = Replay(args.loupe, args.px, work)
    ok = False
    try:
        cloud = render(ROOT / args.overlay)
        by = {(o["kind"], o["metadata"]["name"]): o for o in cloud}
        ns = by[("Namespace", "plc")]["metadata"]["name"]
        r.map_ports(cloud, ns)
        kube = ["--k8s-api", r.kube.url, "--k8s-token-file", str(work / "k8s-token"), "--k8s-namespace", ns]

        # 1. init-secrets writes loupe-secrets through the API; run twice: the second run must keep everything.
        out = r.run_job(by[("Job", "init-secrets")], cloud, kube)
        first = r.kube.data(ns, "loupe-secrets")
        out2 = r.run_job(by[("Job", "init-secrets")], cloud, kube)
        if r.kube.data(ns, "loupe-secrets") != first or "added" in out2:
            raise SystemExit(f"replay: a second init-secrets changed the Secret:\n{out}\n{out2}")
        print(f"  Secret loupe-secrets: {len(first)} keys, kept as they were by a second run")

        # 2. dependencies, with the StatefulSets' settings.
        r.start_postgres(by[("StatefulSet", "postgres")])
        r.start_nats(by[("StatefulSet", "nats")])
        r.start_redis(by[("StatefulSet", "redis")])

        # 3. every Deployment, then create-admin.
        metrics = {"auth": 9093, "profile": 9094, "scripts": 9095, "api": 9092, "vzconn": 9096,
                   "vzconn-internal": 9096, "proxy": 9098, "dnsmgr": 9099}
        for name in ("auth", "profile", "scripts", "vzconn", "vzconn-internal", "api", "proxy", "dnsmgr"):
            argv, env = r.pod(by[("Deployment", name)], cloud)
            r.start(name, argv, env)
        for name, port in metrics.items():
            r.wait_ready(name, name, port)
        r.run_job(by[("Job", "create-admin")], cloud)
        print("  cloud: every Deployment ready")

        # 4. the user's view, through the proxy (cloud-proxy-service:443).
        r.cloud_addr = f"https://127.0.0.1:{r.services[('cloud-proxy-service', 443)]}"
        r.ca_file = work / "ca.crt"
        r.ca_file.write_bytes(first["ca.crt"])
        for _ in range(100):
            if r.px(["version"], check=False).returncode == 0:
                break
            time.sleep(0.3)
        r.px(["auth", "login", "--email", "admin@default.com"], "admin\n", check=False)
        new_password = "replayed-" + os.urandom(6).hex()
        r.px(["auth", "password"], f"admin\n{new_password}\n")
        r.px(["auth", "login", "--email", "admin@default.com"], f"{new_password}\n")
        key = r.px(["deploy-key", "create", "-o", "json"]).stdout
        deploy_key = re.search(r"px-dep-[A-Za-z0-9_-]+", key).group(0)
        print("  px: logged in through the proxy, password changed, deploy key created")
        internal_tls(r, first["ca.crt"], ns)
        print("  internal hops (proxy -> API -> services): TLS with the internal certificate; other CA and h2c refused")

        # 5. a vizier from the rendered vizier manifests, its cloud address the public vzconn-service.
        vizier = render(ROOT / args.vizier)
        vby = {(o["kind"], o["metadata"]["name"]): o for o in vizier}
        r.map_ports(vizier, "pixie-system")
        r.operator_secrets = {"loupe-deploy-key": {"deploy-key": deploy_key.encode()}}
        r.run_job(vby[("Job", "vizier-init-secrets")], vizier,
                  ["--k8s-api", r.kube.url, "--k8s-token-file", str(work / "k8s-token"),
                   "--k8s-namespace", "pixie-system"])
        cfg = vby[("ConfigMap", "vizier-config")]
        cfg["data"]["LOUPE_CLOUD_ADDR"] = f"https://localhost:{r.services[('vzconn-service', 51800)]}"
        cfg["data"]["LOUPE_CLUSTER_NAME"] = "replayed"
        # The query broker, one Kelvin (ready once the broker accepted it) and the PEM joining them. The metadata
        # service needs an API server to watch; without it they answer the metadata functions with ''.
        argv, env = r.pod(vby[("Deployment", "query-broker")], vizier)
        r.start("query-broker", argv, env)
        r.wait_ready("query-broker", "query-broker", 9102)
        argv, env = r.pod(vby[("Deployment", "kelvin")], vizier)
        r.start("kelvin", argv, env)
        r.wait_ready("kelvin", "kelvin", 9103)
        argv, env = r.pod(vby[("DaemonSet", "pem")], vizier, extra_args=["--no-trace"])
        r.start("pem", argv, env)
        r.wait_ready("pem", "pem", 9091)
        argv, env = r.pod(vby[("Deployment", "connector")], vizier)
        r.start("connector", argv, env)
        r.wait_ready("connector", "connector", 9097)
        for _ in range(60):
            out = r.px(["get", "viziers", "-o", "json"]).stdout
            viziers = [json.loads(line) for line in out.splitlines() if line.strip().startswith("{")] or \
                (json.loads(out) if out.strip().startswith("[") else [])
            mine = [v for v in viziers if v.get("name") == "replayed"]
            if mine and str(mine[0].get("status", "")).lower() == "healthy" and mine[0].get("num_agents") == 1:
                print(f"  px get viziers: the replayed vizier is {mine[0]['status']} with 1 agent")
                script = work / "q.pxl"
                script.write_text("import px\ndf = px.DataFrame(table='http_events')\npx.display(df.head(5), 'out')\n")
                q = r.px(["run", "-c", "replayed", "-f", str(script), "-o", "json"], check=False)
                if q.returncode != 0:
                    raise SystemExit(f"replay: a script through the cloud to the vizier failed: {q.stderr}")
                print("  px run -c replayed: a script went cloud -> VZConn -> connector -> broker -> Kelvin <- PEM and back")
                export_default(r, work)
                doctor(r, by, cloud)
                ok = True
                return
            time.sleep(1)
        raise SystemExit(f"replay: the vizier never showed as connected: {out}\n{r.log_tail('connector')}")
    finally:
        r.stop_all()
        if ok and not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"replay: logs kept in {work}", file=sys.stderr)


if __name__ == "__main__":
    main()
