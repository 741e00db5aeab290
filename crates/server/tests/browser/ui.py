#!/usr/bin/python3
"""Browser journeys of Loupe's web UI in real headless Chromium, driven by Selenium (Debian's `chromium`,
`chromium-driver`, `python3-selenium`).

Run by the Rust tests in `crates/server/tests/ui.rs` against a real `loupe up` they start (and traffic they make);
runnable alone too:

    /usr/bin/python3 crates/server/tests/browser/ui.py JOURNEY --base https://127.0.0.1:PORT --shots DIR [--arg K=V]

Each journey asserts as it goes and exits non-zero with the failing step on stderr; it prints one JSON object of
facts the Rust test checks further (a created key, measured sizes). Every page load also fails the journey on any
Content-Security-Policy violation or script error in the browser console, so the UI is shown to work under its
own policy.
"""

import argparse
import json
import os
import re
import sys
import tempfile
import time

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import WebDriverWait

WAIT = 20


class Browser:
    def __init__(self, base, shots):
        self.base = base.rstrip("/")
        self.shots = shots
        os.makedirs(shots, exist_ok=True)
        self.profile = tempfile.TemporaryDirectory(prefix="loupe-ui-chromium-")
        opts = webdriver.ChromeOptions()
        opts.binary_location = "/usr/bin/chromium"
        for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                    # loupe up's proxy serves a certificate of its own private CA.
                    "--ignore-certificate-errors", "--window-size=1400,1000",
                    f"--user-data-dir={self.profile.name}", "--no-first-run", "--disable-extensions"]:
            opts.add_argument(arg)
        opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=opts)
        self.driver.set_page_load_timeout(WAIT)

    def close(self):
        self.check_console()
        self.driver.quit()
        self.profile.cleanup()

    def check_console(self):
        """No CSP violation, no uncaught error: the UI must work under its own policy."""
        for entry in self.driver.get_log("browser"):
            message = entry.get("message", "")
            if os.environ.get("UI_CONSOLE"):
                print(f"console: {message}", file=sys.stderr)
            if entry.get("level") == "SEVERE" and (
                "Content Security Policy" in message or "Uncaught" in message or "SyntaxError" in message
            ):
                fail(f"browser console: {message}")

    def open(self, path):
        self.driver.get(self.base + path)

    def wait(self, what, condition, timeout=WAIT):
        try:
            # Pages redraw: an element found a moment ago may be gone; look again then.
            return WebDriverWait(self.driver, timeout, poll_frequency=0.05,
                                 ignored_exceptions=[StaleElementReferenceException]).until(lambda d: condition(d))
        except TimeoutException:
            self.shot("failure")
            fail(f"timed out waiting for {what} (at {self.driver.current_url}); page text:\n"
                 f"{self.driver.find_element(By.TAG_NAME, 'body').text[:3000]}")

    def el(self, css, timeout=WAIT):
        return self.wait(f"element {css}", lambda d: (d.find_elements(By.CSS_SELECTOR, css) or [None])[0], timeout)

    def els(self, css):
        return self.driver.find_elements(By.CSS_SELECTOR, css)

    def text(self, css):
        # The page may redraw between finding an element and reading it: read again then.
        for _ in range(50):
            try:
                return self.el(css).text
            except StaleElementReferenceException:
                time.sleep(0.05)
        fail(f"{css} kept changing")

    def path(self):
        return self.driver.execute_script("return location.pathname + location.search")

    def wait_path(self, prefix):
        self.wait(f"path {prefix}", lambda d: self.path().startswith(prefix))

    def wait_text(self, css, pattern):
        regex = re.compile(pattern)
        return self.wait(f"{css} to read /{pattern}/",
                         lambda d: next((e.text for e in d.find_elements(By.CSS_SELECTOR, css) if regex.search(e.text)), None))

    def type(self, css, text, enter=False):
        field = self.el(css)
        field.clear()
        field.send_keys(text)
        if enter:
            field.send_keys(Keys.ENTER)

    def shot(self, name):
        self.driver.save_screenshot(os.path.join(self.shots, f"{name}.png"))

    def no_alert(self):
        try:
            alert = self.driver.switch_to.alert
            fail(f"an alert opened: {alert.text!r}")
        except NoAlertPresentException:
            pass

    def login(self, email, password):
        self.open("/login")
        self.type("input[type=email]", email)
        self.type("input[type=password]", password, enter=True)
        self.wait("the login to finish", lambda d: not self.path().startswith("/login"))


def fail(message):
    print(f"FAIL: {message}", file=sys.stderr)
    sys.exit(1)


def check(condition, message):
    if not condition:
        fail(message)


def session_token(b):
    return b.driver.execute_script("return JSON.parse(sessionStorage.getItem('loupe.session')).token")


def journey_login(b, args):
    """First login forces the password change; errors (wrong password, mismatch, throttled) show in the page;
    logout ends the session; an ended session sends the user back to log in."""
    b.open("/live/px/http_data")
    b.wait_path("/login?next=")
    check(b.path() == "/login?next=%2Flive%2Fpx%2Fhttp_data", f"redirect keeps the target: {b.path()}")
    for css in ["input[type=email]", "input[type=password]", "button[type=submit]"]:
        b.el(css)
    check(b.driver.switch_to.active_element.get_attribute("type") == "email", "the email field has focus")
    b.shot("login")

    # Keyboard only: the email field has focus; Tab goes to the password, then to the button.
    active = b.driver.switch_to.active_element
    active.send_keys("admin@default.com", Keys.TAB)
    b.driver.switch_to.active_element.send_keys("not the password", Keys.TAB)
    check(b.driver.switch_to.active_element.get_attribute("id") == "login", "Tab reaches the submit button")
    b.driver.switch_to.active_element.send_keys(Keys.ENTER)
    check(b.wait_text("#form-error", ".") == "invalid email or password", "wrong password message")
    check(b.path().startswith("/login"), "still on the login page")

    b.type("input[type=password]", "admin", enter=True)
    b.wait_path("/password")
    check(b.text("#must-change") == "This is your first login: choose a new password to continue.", "told to change")
    check(len(b.els("input[type=password]")) == 3, "current, new and confirm")
    b.shot("password-change")
    # Every other page sends the user back here until the password is changed.
    b.open("/admin/viziers")
    b.wait_path("/password")
    b.type("#current-password", "admin")
    b.type("#new-password", "a long new passphrase")
    b.type("#confirm-password", "a long new passphrase, mistyped", enter=True)
    check(b.wait_text("#form-error", ".") == "The new passwords do not match.", "mismatch shown")
    b.type("#current-password", "wrong current")
    b.type("#confirm-password", "a long new passphrase", enter=True)
    b.wait_text("#form-error", "(?i)password")
    wrong_current = b.text("#form-error")
    b.type("#current-password", "admin")
    b.type("#new-password", "a long new passphrase")
    b.type("#confirm-password", "a long new passphrase", enter=True)
    b.wait_path("/admin/viziers")
    check(b.text("#who") == "admin@default.com", "the header names the user")

    b.el("#logout").click()
    b.wait_path("/login")
    b.open("/admin/api-keys")
    b.wait_path("/login?next=%2Fadmin%2Fapi-keys")

    # Logging in again needs no change, and lands on the page asked for.
    b.type("input[type=email]", "admin@default.com")
    b.type("input[type=password]", "a long new passphrase", enter=True)
    b.wait_path("/admin/api-keys")
    b.wait_text("#key-list", "No API keys yet.")
    # The server ends the session (as expiry or logout elsewhere would): the next call sends the user to log in,
    # saying why.
    token = session_token(b)
    status = b.driver.execute_script(
        "return fetch('/api/v1/auth/logout', {method: 'POST', headers: {Authorization: 'Bearer ' + arguments[0]}})"
        ".then(r => r.status)", token)
    check(status == 200, f"logout by fetch: {status}")
    b.el("a[href='/admin/viziers']").click()
    b.wait_path("/login?next=%2Fadmin%2Fviziers")
    check(b.wait_text("#form-error", ".") == "Your session has expired. Log in again.", "expiry shown")

    # Throttled: the sixth failure of one account within the window.
    for _ in range(6):
        b.type("input[type=email]", "nobody@default.com")
        b.type("input[type=password]", "guess", enter=True)
        b.wait("the answer", lambda d: not self_busy(b) and b.el("#form-error").text)
    message = b.wait_text("#form-error", "too many")
    check(re.fullmatch(r"too many failed login attempts; retry in \d+ s", message), f"throttle message: {message}")
    b.shot("login-throttled")
    return {"wrong_current_password": wrong_current}


def self_busy(b):
    return b.el("#login").get_attribute("disabled") is not None


def rerun_until_rows(b, table, want, timeout=60):
    """The rows of `table` once it holds `want` of them: the test's requests were made just before the
    journey and their capture may still be on its way (a loaded host), so the script runs again until then."""
    deadline = time.time() + timeout
    while len(rows := rows_of(b, table) or []) < want and time.time() < deadline:
        time.sleep(1)
        b.el("#run").click()
        b.wait_text("#run-status", r"rows in \d+ ms")
    return rows


def rows_of(b, table):
    """Every row of the widget's current page as {column: text}."""
    return b.driver.execute_script(
        """
        const widget = document.querySelector(`[data-table="${arguments[0]}"]`);
        if (!widget) return null;
        return [...widget.querySelectorAll('tbody tr')].map(tr =>
          Object.fromEntries([...tr.children].map(td => [td.dataset.column, td.textContent])));
        """, table)


def raw_request(port, method, path, body=""):
    """One HTTP/1.1 request whose request line carries exactly `path`, as an attacker would send it."""
    import socket
    with socket.create_connection(("127.0.0.1", port)) as s:
        s.sendall((f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: <script>window.__pwned=3</script>\r\n"
                   f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n{body}").encode())
        answer = b""
        while chunk := s.recv(4096):
            answer += chunk
    check(answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"ok"), f"nginx answered {answer!r}")


def requests_of(port, attempt):
    """The paths and bodies of one attempt: a plain request, markup in the path, markup in the body."""
    paths = [f"/ui-plain-{port}-{attempt}", f"/<script>window.__pwned=1</script>?a={attempt}", f"/submit?a={attempt}"]
    bodies = ["", "", f'<img src=x onerror="window.__pwned=2">{attempt}']
    return paths, bodies


def journey_live(b, args):
    """The live view of px/http_data shows the test's real traffic; attacker-written values are inert text.
    The host is shared (other tests trace too, and px/http_data shows 100 rows), so each attempt makes fresh
    requests, told apart by an attempt number, and looks for exactly those."""
    port = int(args["port"])
    b.login("admin@default.com", "a long new passphrase")
    vizier = args["vizier"]
    b.open(f"/live/px/http_data?vizier={vizier}")
    b.wait_text("#run-status", r"rows in \d+ ms|Failed")
    check(b.el("#vizier").get_attribute("value") == vizier, "the vizier from the URL is chosen")
    check(b.el("#script").get_attribute("value") == "px/http_data", "the script from the URL is chosen")
    deadline = time.time() + 60
    # Attempt 0 was made by the test right after `loupe up` started listening (among the store's first rows);
    # each later attempt makes fresh requests (among its newest).
    attempts = {0: requests_of(port, 0)}
    attempt = 0
    while True:
        if attempt > 0:
            attempts[attempt] = requests_of(port, attempt)
            for path, body in zip(*attempts[attempt]):
                raw_request(port, "POST" if body else "GET", path, body)
            time.sleep(0.3)
            b.el("#run").click()
        b.wait_text("#run-status", r"rows in \d+ ms")
        check(b.text("#run-error") == "", f"the run failed: {b.text('#run-error')}")
        b.type("[data-table=http_data] input[type=search]", str(port))
        shown = [r for r in (rows_of(b, "http_data") or []) if r.get("local_port") == str(port)]
        found = None
        for paths, bodies in attempts.values():
            mine = [r for r in shown if r["req_path"] in paths]
            if sorted(r["req_path"] for r in mine) == sorted(paths):
                found = (paths, bodies, mine)
                break
        if found:
            paths, bodies, mine = found
            break
        check(time.time() < deadline, f"server rows of port {port}: {shown}, want one of {attempts}")
        attempt += 1
    check(sorted(r["req_body"] for r in mine) == sorted(bodies), f"bodies as text: {[r['req_body'] for r in mine]}")
    check(all(r["resp_status"] == "200" and r["req_method"] in ("GET", "POST") for r in mine), f"rows {mine}")
    # Inert: the payloads are text; no element, no alert, no script ran.
    b.no_alert()
    check(b.driver.execute_script("return window.__pwned === undefined"), "a payload ran")
    widget = b.el("#widgets")
    check(widget.find_elements(By.CSS_SELECTOR, "img, script, iframe, svg") == [], "a payload made an element")
    check(len(b.els("script")) == 1, "only the app's module script")
    b.shot("live-http-data")

    # Sorting: by status, ascending then descending, announced on the header.
    b.type("[data-table=http_data] input[type=search]", "")
    header = b.el("[data-table=http_data] th:nth-child(10) button")
    check(header.text.startswith("resp_status"), f"column 10 is {header.text}")
    header.click()
    th = b.el("[data-table=http_data] th:nth-child(10)")
    check(th.get_attribute("aria-sort") == "ascending", "aria-sort ascending")
    values = [int(r["resp_status"]) for r in rows_of(b, "http_data") if r["resp_status"]]
    check(values == sorted(values), f"ascending: {values}")
    b.driver.switch_to.active_element.send_keys(Keys.ENTER)  # the header button keeps focus; Enter sorts again
    check(b.el("[data-table=http_data] th:nth-child(10)").get_attribute("aria-sort") == "descending", "descending")
    values = [int(r["resp_status"]) for r in rows_of(b, "http_data") if r["resp_status"]]
    check(values == sorted(values, reverse=True), f"descending: {values}")

    # A run can be cancelled: Run then Cancel in one task, so the cancel lands while the run is in flight.
    b.driver.execute_script("document.getElementById('run').click(); document.getElementById('cancel').click();")
    check(b.wait_text("#run-status", ".") == "Cancelled.", f"status {b.text('#run-status')}")
    check(b.el("#run").is_enabled() and not b.el("#cancel").is_enabled(), "Run is back, Cancel is off")
    check(b.text("#run-error") == "", "a cancel is no error")
    return {}


def journey_first_load(b, args):
    """The first load of the live view: bytes over the wire (compressed) and time to interactive."""
    b.login("admin@default.com", "a long new passphrase")
    facts = b.driver.execute_script(
        """
        const nav = performance.getEntriesByType('navigation')[0];
        const resources = performance.getEntriesByType('resource').filter(r => !r.name.includes('/api/'));
        return {
          interactive_ms: nav.domInteractive,
          content_loaded_ms: nav.domContentLoadedEventEnd,
          html_bytes: nav.encodedBodySize,
          assets: resources.map(r => [new URL(r.name).pathname, r.encodedBodySize, r.decodedBodySize]),
        };
        """)
    # A fresh browser: nothing cached. Open the live view itself and time until its toolbar works.
    fresh = Browser(b.base, b.shots)
    try:
        fresh.driver.get(b.base + "/login")
        fresh.el("input[type=email]")
        fresh.driver.execute_script(
            "sessionStorage.setItem('loupe.session', arguments[0])",
            b.driver.execute_script("return sessionStorage.getItem('loupe.session')"))
        fresh.driver.execute_script("performance.clearResourceTimings()")
        fresh.driver.delete_all_cookies()
        fresh.driver.execute_cdp_cmd("Network.enable", {})
        fresh.driver.execute_cdp_cmd("Network.clearBrowserCache", {})
        start = time.time()
        fresh.open(f"/live/px/http_data?vizier={args['vizier']}")
        fresh.el("#run")
        fresh.wait("the script list", lambda d: len(d.find_elements(By.CSS_SELECTOR, "#script option")) > 0)
        ready_s = time.time() - start
        timing = fresh.driver.execute_script(
            """
            const nav = performance.getEntriesByType('navigation')[0];
            const ui = performance.getEntriesByType('resource').filter(r => r.name.includes('/ui/'));
            return {
              dom_interactive_ms: nav.domInteractive,
              transfer_bytes: nav.transferSize + ui.reduce((s, r) => s + r.transferSize, 0),
              encoded_bytes: nav.encodedBodySize + ui.reduce((s, r) => s + r.encodedBodySize, 0),
              decoded_bytes: nav.decodedBodySize + ui.reduce((s, r) => s + r.decodedBodySize, 0),
              files: ui.length + 1,
            };
            """)
        timing["toolbar_ready_ms"] = round(ready_s * 1000)
        fresh.shot("live-first-load")
    finally:
        fresh.close()
    check(timing["encoded_bytes"] < 1_000_000, f"first load {timing}")
    check(timing["toolbar_ready_ms"] < 1000, f"interactive in {timing['toolbar_ready_ms']} ms")
    facts.update(timing)
    return facts


def journey_admin(b, args):
    """Viziers with status, version, agents and heartbeat; an API key and a deploy key created and revoked;
    users listed and invited."""
    b.login("admin@default.com", "a long new passphrase")
    vizier = args["vizier"]
    b.open("/admin/viziers")
    row = b.el(f"tr[data-vizier='{vizier}']")
    cells = [td.text for td in row.find_elements(By.TAG_NAME, "td")]
    check(cells[1] == "healthy", f"status: {cells}")
    check(cells[2] == args["version"], f"version: {cells}")
    check(cells[3] == "1", f"agents: {cells}")
    check(re.fullmatch(r"\d+ s ago", cells[4]), f"heartbeat: {cells}")
    b.shot("admin-viziers")

    out = {}
    for kind, prefix in [("api-keys", "px-api-"), ("deploy-keys", "px-dep-")]:
        b.open(f"/admin/{kind}")
        b.el("#key-list")
        b.type("#key-description", f"browser {kind}", enter=True)
        key = b.wait_text("#new-key", prefix)
        check(re.fullmatch(prefix + r"[A-Za-z0-9_-]{32}", key), f"key shape: {key}")
        listed = b.el(f"tr[data-key='{key[:12]}']")
        check(listed.get_attribute("data-revoked") == "false", "listed active")
        check(f"browser {kind}" in listed.text, "with its description")
        b.shot(f"admin-{kind}")
        listed.find_element(By.CSS_SELECTOR, "button.revoke").click()
        b.wait("the revocation", lambda d: d.execute_script(
            "const r = document.querySelector(`tr[data-key='${arguments[0]}']`); return r && r.dataset.revoked",
            key[:12]) == "true")
        out[kind] = key

    b.open("/admin/users")
    row = b.el("tr[data-user='admin@default.com']")
    check([td.text for td in row.find_elements(By.TAG_NAME, "td")][2] == "admin", "admin's role")
    b.type("#invite-email", "new.user@default.com", enter=True)
    url = b.wait_text("#invite-url", "/invite")
    check(re.fullmatch(re.escape(b.base) + r"/invite\?token=[0-9a-f]{64}", url), f"invite url {url}")
    b.shot("admin-users")

    # The invitee opens the link, joins as a member, and is refused what only admins may do.
    b.el("#logout").click()
    b.wait_path("/login")
    b.driver.get(url)
    b.type("#display-name", "New User")
    b.type("#new-password", "the invitee's passphrase", enter=True)
    b.wait_path("/live/px/http_data")
    check(b.text("#who") == "new.user@default.com", "logged in as the invitee")
    b.open("/admin/users")
    row = b.el("tr[data-user='new.user@default.com']")
    check([td.text for td in row.find_elements(By.TAG_NAME, "td")][1:3] == ["New User", "member"], "a member")
    b.open("/admin/deploy-keys")
    b.el("#key-list")
    b.type("#key-description", "not mine to make", enter=True)
    refused = b.wait_text("#page-error", ".")
    check("admin" in refused, f"a member is refused: {refused}")
    return out


def journey_other_org(b, args):
    """A user of another org sees none of this org's data: no vizier, no keys, no users, no rows."""
    b.open("/login")
    b.type("input[type=email]", args["email"])
    b.type("input[type=password]", args["password"], enter=True)
    b.wait_path("/password")
    b.type("#current-password", args["password"])
    b.type("#new-password", "another long passphrase")
    b.type("#confirm-password", "another long passphrase", enter=True)
    b.wait_path("/live/px/http_data")
    check(b.wait_text("#vizier option", ".") == "no vizier registered", "no vizier in the picker")
    check(b.els("[data-table]") == [], "no rows")
    b.open("/admin/viziers")
    b.wait_text("main p", "No vizier is registered yet")
    b.open("/admin/api-keys")
    b.wait_text("#key-list", "No API keys yet.")
    b.open("/admin/users")
    b.el(f"tr[data-user='{args['email']}']")
    check(len(b.els("#users tbody tr")) == 1, "only the org's own user")
    # Naming the first org's vizier in the URL does not reach it.
    b.open(f"/live/px/http_data?vizier={args['vizier']}")  # runs by itself
    error = b.wait_text("#run-error", ".")
    check(error == f"no vizier \"{args['vizier']}\" in your org (`px get viziers` lists them)", f"error: {error}")
    b.shot("other-org")
    return {}


def journey_editor(b, args):
    """An edited script with an error shows it at its line; a fixed one runs; it saves as an org script."""
    b.login("admin@default.com", "a long new passphrase")
    b.open(f"/editor?script=px/http_data&vizier={args['vizier']}")
    b.wait("the script text", lambda d: "http_events" in b.el("#pxl").get_attribute("value"))
    broken = "import px\ndf = px.DataFrame(table='http_events', start_time='-5m')\ndf = df[df.no_such_column == 1]\npx.display(df, 'out')\n"
    pxl = b.el("#pxl")
    pxl.clear()
    b.driver.execute_script("arguments[0].value = arguments[1]", pxl, broken)
    b.el("#run").click()
    marked = b.el("#source li.error-line")
    check(marked.get_attribute("data-line") == "3", f"marked line {marked.get_attribute('data-line')}")
    check(marked.find_element(By.TAG_NAME, "code").text == "df = df[df.no_such_column == 1]", "the line's text")
    message = marked.find_element(By.CLASS_NAME, "line-error").text
    check("no_such_column" in message, f"message: {message}")
    check(b.wait_text(".compile-errors li", "line 3") .startswith("line 3, column "), "listed with its place")
    b.shot("editor-compile-error")

    fixed = f"import px\ndf = px.DataFrame(table='http_events', start_time='-5m')\ndf = df[df.local_port == {args['port']}]\npx.display(df, 'out')\n"
    b.driver.execute_script("arguments[0].value = arguments[1]", pxl, fixed)
    b.el("#run").click()
    b.wait_text("#run-status", r"rows in \d+ ms")
    check(b.els("#source") == [], "no marks left")
    rows = rerun_until_rows(b, "out", int(args["rows"]))
    check(rows and all(r["local_port"] == str(args["port"]) for r in rows), f"rows {rows}")
    b.type("#save-name", "org/ui_port_rows", enter=True)
    check(b.wait_text("#save-status", ".") == "Saved as org/ui_port_rows.", "saved")
    b.open(f"/live/org/ui_port_rows?vizier={args['vizier']}")
    b.wait_text("#run-status", r"rows in \d+ ms")
    check(len(rows_of(b, "out")) == len(rows), "the saved script runs in the live view")

    # A vis spec asking for a time series draws one: a line through each row's latency over time.
    b.open(f"/editor?script=org/ui_port_rows&vizier={args['vizier']}")
    b.wait("the script text", lambda d: "local_port" in b.el("#pxl").get_attribute("value"))
    vis = {"widgets": [{"name": "latency", "func": {"outputName": "out"},
                        "displaySpec": {"@type": "types.px.dev/px.vispb.TimeseriesChart",
                                        "timeseries": [{"value": "latency"}]}}]}
    b.driver.execute_script("arguments[0].value = arguments[1]", b.el("#vis"), json.dumps(vis))
    b.el("#run").click()
    b.wait_text("#run-status", r"rows in \d+ ms")
    path = b.el("[data-chart=latency] path.series")
    points = re.findall(r"[ML]", path.get_attribute("d"))
    check(len(points) == len(rows), f"one point per row: {path.get_attribute('d')}")
    label = b.el("[data-chart=latency] svg.chart").get_attribute("aria-label")
    check(label.startswith(f"latency: latency over time, {len(rows)} points, 1 series"), f"label {label}")
    b.shot("editor-time-series")
    return {"rows": len(rows)}


WIDGETS_PXL = """import px


def requests(start_time: str, port: int, min_count: int):
    df = px.DataFrame(table='http_events', start_time=start_time)
    df = df[df.local_port == port]
    df = df.groupby(['req_method', 'req_path']).agg(requests=('latency', px.count))
    df = df[df.requests >= min_count]
    df.stack_trace = px.replace('/', px.substring(df.req_path, 1, 200), ';')
    return df


def total(start_time: str, port: int):
    df = px.DataFrame(table='http_events', start_time=start_time)
    df = df[df.local_port == port]
    return df.agg(requests=('latency', px.count))

"""

WIDGETS_VIS = {
    "variables": [
        {"name": "start_time", "type": "PX_STRING", "defaultValue": "-5m"},
        {"name": "port", "type": "PX_INT64", "description": "the test's nginx port"},
        {"name": "min_count", "type": "PX_INT64", "defaultValue": "0"},
    ],
    "globalFuncs": [
        {"outputName": "by_path", "func": {"name": "requests", "args": [
            {"name": "start_time", "variable": "start_time"}, {"name": "port", "variable": "port"},
            {"name": "min_count", "variable": "min_count"}]}},
    ],
    "widgets": [
        {"name": "total", "func": {"name": "total", "args": [
            {"name": "start_time", "variable": "start_time"}, {"name": "port", "variable": "port"}]},
         "displaySpec": {"@type": "types.px.dev/px.vispb.StatChart", "stat": {"value": "requests"}}},
        {"name": "per path", "globalFuncOutputName": "by_path",
         "displaySpec": {"@type": "types.px.dev/px.vispb.BarChart",
                         "bar": {"value": "requests", "label": "req_path", "horizontal": True}}},
        {"name": "request graph", "globalFuncOutputName": "by_path",
         "displaySpec": {"@type": "types.px.dev/px.vispb.RequestGraph", "requestorServiceColumn": "req_method",
                         "responderServiceColumn": "req_path", "totalRequestCountColumn": "requests"}},
        {"name": "flame", "globalFuncOutputName": "by_path",
         "displaySpec": {"@type": "types.px.dev/px.vispb.StackTraceFlameGraph",
                         "stacktraceColumn": "stack_trace", "countColumn": "requests"}},
        {"name": "spread", "globalFuncOutputName": "by_path",
         "displaySpec": {"@type": "types.px.dev/px.vispb.HistogramChart",
                         "histogram": {"value": "requests", "maxbins": 3}}},
        {"name": "share", "globalFuncOutputName": "by_path",
         "displaySpec": {"@type": "types.px.dev/px.vispb.PieChart", "label": "req_path", "value": "requests"}},
        {"name": "dial", "globalFuncOutputName": "by_path",
         "displaySpec": {"@type": "types.px.dev/px.vispb.GaugeChart", "value": "requests"}},
        {"name": "about",
         "displaySpec": {"@type": "types.px.dev/px.vispb.TextChart",
                         "body": "# Requests\n\nPer path of <b>this</b> test's nginx.\n<img src=x onerror=alert(1)>"}},
    ],
}

# The requests the Rust test makes to its nginx before this journey: path -> how many.
WIDGET_PATHS = {"/main/serve/parse": 3, "/main/serve/write": 2, "/main/gc": 1}


def bars_of(b, name):
    return b.driver.execute_script(
        "return [...document.querySelectorAll(`[data-bar=\"${arguments[0]}\"] g.bar`)]"
        ".map(g => [g.dataset.label, Number(g.dataset.value)])", name)


def frames_of(b):
    """The flamegraph's frames: name -> (depth, samples, rect width)."""
    return b.driver.execute_script(
        """return Object.fromEntries([...document.querySelectorAll('[data-flamegraph] g.frame')].map(g =>
             [g.dataset.frame, [Number(g.dataset.depth), Number(g.dataset.samples),
                                Number(g.querySelector('rect').getAttribute('width'))]]))""")


def journey_widgets(b, args):
    """A function-form script written in the editor with a vis spec of a stat, a bar chart, a request graph
    and a flamegraph, saved, and opened in the live view: its variables are inputs (the port from the URL),
    each widget draws the test's requests, and changing a variable re-runs with it (and the URL says so)."""
    b.login("admin@default.com", "a long new passphrase")
    vizier, port = args["vizier"], args["port"]
    b.open(f"/editor?vizier={vizier}")
    b.el("#pxl")
    b.driver.execute_script("arguments[0].value = arguments[1]", b.el("#pxl"), WIDGETS_PXL)
    b.driver.execute_script("arguments[0].value = arguments[1]", b.el("#vis"), json.dumps(WIDGETS_VIS, indent=2))
    b.type("#save-name", "org/ui_widgets", enter=True)
    check(b.wait_text("#save-status", ".") == "Saved as org/ui_widgets.", f"saved: {b.text('#run-error')}")

    b.open(f"/live/org/ui_widgets?vizier={vizier}&port={port}")
    b.wait_text("#run-status", r"rows in \d+ ms|Failed")
    check(b.text("#run-error") == "", f"the run failed: {b.text('#run-error')}")
    check(b.el("#var-port").get_attribute("value") == port, "the port variable comes from the URL")
    check(b.el("#var-min_count").get_attribute("value") == "0", "min_count has its default")
    check(b.el("#var-start_time").get_attribute("value") == "-5m", "start_time has its default")
    # The test's requests were made before the journey; the capture may still be on its way: run again until
    # all six are there.
    deadline = time.time() + 60
    while b.driver.execute_script(
            "const o = document.querySelector('[data-stat=total] output'); return o && o.dataset.value") != "6":
        check(time.time() < deadline, f"stat: {b.text('#widgets')[:500]}")
        time.sleep(1)
        b.el("#run").click()
        b.wait_text("#run-status", r"rows in \d+ ms")
    check(b.text("[data-stat=total] output") == "6", "the stat shows the total")

    # Histogram of the per-path counts 3, 2 and 1 in three bins; a pie of the paths' shares; a gauge of the
    # last row against the largest; the text as text, its markup inert.
    bins = b.driver.execute_script(
        "return [...document.querySelectorAll('[data-histogram=spread] g.bin')].map(g => Number(g.dataset.count))")
    check(bins == [1, 1, 1], f"one path per bin: {bins}")
    slices = b.driver.execute_script(
        "return [...document.querySelectorAll('[data-pie=share] g.slice')].map(g => [g.dataset.label, Number(g.dataset.value)])")
    check(sorted(slices) == sorted([list(i) for i in WIDGET_PATHS.items()]), f"one slice per path: {slices}")
    gauge = b.driver.execute_script(
        "const o = document.querySelector('[data-gauge=dial] output'); return o && Number(o.dataset.value)")
    check(gauge in WIDGET_PATHS.values(), f"the gauge shows a row's count: {gauge}")
    check(b.text("[data-text=about] h3") == "Requests", "the text's heading")
    about = b.text("[data-text=about] p")
    check("<b>this</b>" in about and "<img" in about, f"the text's markup stays text: {about}")
    check(b.driver.execute_script("return document.querySelectorAll('[data-text=about] b, [data-text=about] img').length") == 0,
          "no element made from the text")
    b.driver.execute_script("document.querySelector('[data-histogram=spread]').scrollIntoView()")
    b.shot("live-histogram-pie-gauge")

    bars = sorted(bars_of(b, "per path"))
    check(bars == sorted([list(i) for i in WIDGET_PATHS.items()]), f"one bar per path with its count: {bars}")
    nodes = b.driver.execute_script(
        "return [...document.querySelectorAll('[data-graph] g.node')].map(g => g.dataset.node).sort()")
    check(nodes == sorted(["GET", *WIDGET_PATHS]), f"graph nodes: {nodes}")
    edges = b.driver.execute_script(
        "return [...document.querySelectorAll('[data-graph] g.edge')].map(g => [g.dataset.edge, Number(g.dataset.weight)]).sort()")
    check(edges == sorted([[f"GET → {p}", n] for p, n in WIDGET_PATHS.items()]), f"graph edges: {edges}")
    check(b.el("[data-graph] g.edge path").get_attribute("marker-end").startswith("url(#arrow-"), "edges have arrows")

    frames = frames_of(b)
    check(frames["all"][:2] == [0, 6] and frames["main"][:2] == [1, 6], f"root frames: {frames}")
    check(frames["serve"][:2] == [2, 5] and frames["gc"][:2] == [2, 1], f"second level: {frames}")
    check(frames["parse"][:2] == [3, 3] and frames["write"][:2] == [3, 2], f"leaves: {frames}")
    check(abs(frames["serve"][2] / frames["main"][2] - 5 / 6) < 0.01, f"widths follow samples: {frames}")
    b.shot("live-widgets")
    # Zoom into `serve` by keyboard: it spans the width, `parse` takes three fifths of it; Reset zooms out.
    frame = b.el("[data-flamegraph] g.frame[data-frame=serve]")
    frame.send_keys(Keys.ENTER)
    b.wait("the zoom", lambda d: "gc" not in frames_of(b))
    frames = frames_of(b)
    check(abs(frames["parse"][2] / frames["serve"][2] - 3 / 5) < 0.01 and frames["serve"][2] > 990, f"zoomed: {frames}")
    b.el("[data-flamegraph] button.reset-zoom").click()
    b.wait("the zoom out", lambda d: "gc" in frames_of(b))
    b.shot("live-flamegraph-zoomed-out")

    # A variable changed re-runs with it: min_count 2 leaves the paths asked at least twice.
    b.type("#var-min_count", "2", enter=True)
    b.wait("two bars", lambda d: len(bars_of(b, "per path")) == 2)
    check(sorted(bars_of(b, "per path")) == [["/main/serve/parse", 3], ["/main/serve/write", 2]], "filtered bars")
    check(f"min_count=2" in b.path() and f"port={port}" in b.path(), f"the URL shares the values: {b.path()}")
    # The stat's table may come after the bars' (each widget draws when its rows arrive).
    b.wait("the stat, not filtered", lambda d: d.execute_script(
        "const o = document.querySelector('[data-stat=total] output'); return o && o.dataset.value") == "6")
    b.no_alert()
    return {"frames": len(frames)}


def journey_bundled(b, args):
    """Every bundled script with a vis spec opens in the live view of this host: the run ends without an error,
    each variable is an input holding its default, and each widget of the spec is drawn under its name (a
    table, time series, bar chart, stat, graph or flamegraph), with or without rows."""
    b.login("admin@default.com", "a long new passphrase")
    vizier = args["vizier"]
    specs = b.driver.execute_async_script("""
        const [token, done] = arguments;
        const get = (p) => fetch(p, {headers: {Authorization: 'Bearer ' + token}}).then((r) => r.json());
        get('/api/v1/scripts').then(async (list) => {
          const out = {};
          for (const s of list.filter((s) => s.name.startsWith('px/'))) out[s.name] = (await get(`/api/v1/scripts/${s.name}`)).vis;
          done(out);
        }).catch((e) => done(String(e)));""", session_token(b))
    check(isinstance(specs, dict) and len(specs) >= 25, f"the bundled scripts: {specs}")
    kinds = {"Table": "table", "TimeseriesChart": "chart", "BarChart": "bar", "StatChart": "stat", "Graph": "graph",
             "StackTraceFlameGraph": "flamegraph"}
    drawn = 0
    for name, vis in sorted(specs.items()):
        if not vis:
            continue
        b.open(f"/live/{name}?vizier={vizier}")
        b.wait_text("#run-status", r"rows in \d+ ms|Failed")
        check(b.text("#run-error") == "", f"{name} failed: {b.text('#run-error')}")
        for v in vis.get("variables", []):
            value = b.el(f"#var-{v['name']}").get_attribute("value")
            check(value == v.get("defaultValue", ""), f"{name}: variable {v['name']} holds {value!r}")
        for w in vis["widgets"]:
            kind = kinds[w["displaySpec"]["@type"].rsplit(".", 1)[1]]
            b.el(f'[data-{kind}="{w["name"]}"]')
            drawn += 1
        b.no_alert()
    b.shot("live-bundled-last")
    return {"scripts": len(specs), "widgets": drawn}


def journey_big(b, args):
    """A result past the row cap: the page says it was truncated and how much it keeps, every widget holds
    the kept rows, and the page stays usable (sort, page, filter over 10,000 rows), timed."""
    b.login("admin@default.com", "a long new passphrase")
    b.open(f"/editor?vizier={args['vizier']}")
    b.el("#pxl")
    b.driver.execute_script("arguments[0].value = arguments[1]", b.el("#pxl"), args["pxl"])
    b.driver.execute_script("arguments[0].value = ''", b.el("#vis"))
    b.type("#save-name", "org/ui_big", enter=True)
    check(b.wait_text("#save-status", ".") == "Saved as org/ui_big.", "saved")
    b.open(f"/live/org/ui_big?vizier={args['vizier']}")
    notice = b.wait_text("#truncated", "truncated")
    b.wait_text("#run-status", r"rows in \d+ ms")
    check(b.text("#run-error") == "", f"the run failed: {b.text('#run-error')}")
    m = re.search(r"showing the first (\d+) of (\d+) rows", notice)
    check(m and m.group(1) == "10000" and int(m.group(2)) > 10000, f"notice: {notice}")
    counts = b.driver.execute_script(
        "return [...document.querySelectorAll('[data-table] .count')].map(c => c.textContent)")
    total = sum(int(c.split()[0]) for c in counts)
    check(total == 10000, f"the widgets hold the kept rows: {counts}")
    check(len(b.els("[data-table] tbody tr")) <= 2 * 100, "only a page of each table is in the DOM")
    b.shot("live-truncated")

    # Usable: each action redraws at once (timed in the page, from the click to the redraw).
    def timed(script):
        return b.driver.execute_script(
            "const t = performance.now();" + script + "; return performance.now() - t;")
    table = "document.querySelector('[data-table]')"
    sort_ms = timed(f"{table}.querySelector('th:nth-child(2) button').click()")
    next_ms = timed(f"[...{table}.querySelectorAll('.pager button')].find(x => x.textContent === 'Next').click()")
    filter_ms = timed(f"const f = {table}.querySelector('input[type=search]'); f.value = '1'; "
                      "f.dispatchEvent(new Event('input'))")
    check(re.search(r"page 1 of|of \d+ rows", b.text("[data-table] .pager") + b.text("[data-table] .count")), "redrawn")
    # A frame is drawn between actions: the main thread is free (a busy page would time out here).
    frame_ms = b.driver.execute_async_script(
        "const done = arguments[0]; const t = performance.now(); requestAnimationFrame(() => done(performance.now() - t));")
    facts = {"sort_ms": round(sort_ms), "next_page_ms": round(next_ms), "filter_ms": round(filter_ms),
             "frame_ms": round(frame_ms), "notice": notice}
    check(max(sort_ms, next_ms, filter_ms) < 2000, f"usable: {facts}")
    return facts


def journey_cron_settings(b, args):
    """Cron scripts: one created runs and reports results, is disabled, enabled and deleted. Settings: the
    profile and org show, a setting is saved, and the password is changed (a mismatch refused first)."""
    b.login("admin@default.com", "a long new passphrase")
    b.open("/admin/cron-scripts")
    b.wait_text("#cron-list", "No cron scripts yet.")
    b.type("#cron-name", "ui_cron")
    b.type("#cron-frequency", "2")
    b.driver.execute_script("arguments[0].value = arguments[1]", b.el("#cron-script"),
                            "import px\npx.display(px.DataFrame(table='http_events', start_time='-1m').head(5), 'out')\n")
    b.el("#create-cron").click()
    row = b.el("tr[data-cron=ui_cron]")
    check(row.get_attribute("data-enabled") == "true", "created enabled")
    check("every 2 s" in row.text and "all" in row.text, f"row: {row.text}")
    b.shot("admin-cron-scripts")
    deadline = time.time() + 60
    while True:
        b.el("tr[data-cron=ui_cron] button.results").click()
        b.wait("the results", lambda d: d.find_elements(By.CSS_SELECTOR, "#cron-results table, #no-results"))
        if b.els("#cron-results tr[data-result]"):
            break
        check(time.time() < deadline, "no cron result within a minute")
        time.sleep(2)
    result = b.el("#cron-results tr[data-result]")
    cells = [td.text for td in result.find_elements(By.TAG_NAME, "td")]
    check(cells[0] == args["vizier"] and result.get_attribute("data-result") == "ok", f"result: {cells}")
    b.shot("admin-cron-results")
    b.el("tr[data-cron=ui_cron] button.toggle").click()
    b.wait("disabled", lambda d: b.el("tr[data-cron=ui_cron]").get_attribute("data-enabled") == "false")
    b.el("tr[data-cron=ui_cron] button.toggle").click()
    b.wait("enabled", lambda d: b.el("tr[data-cron=ui_cron]").get_attribute("data-enabled") == "true")
    b.el("tr[data-cron=ui_cron] button.delete").click()
    b.wait_text("#cron-list", "No cron scripts yet.")
    # A script that does not compile is refused, in the page.
    b.type("#cron-name", "ui_broken")
    b.driver.execute_script("arguments[0].value = 'import px\\npx.display(nope)\\n'", b.el("#cron-script"))
    b.el("#create-cron").click()
    b.wait_text("#page-error", ".")

    b.open("/settings")
    check(b.wait_text("#profile-facts [data-fact=Email]", ".") == "admin@default.com", "profile email")
    check(b.text("#profile-facts [data-fact=Role]") == "admin", "profile role")
    check(b.text("#org-facts [data-fact=Name]") == "default", "org name")
    b.type("#setting-key", "ui.theme")
    b.type("#setting-value", "dark", enter=True)
    check(b.el("tr[data-setting='ui.theme']").text == "ui.theme dark", "setting saved")
    b.open("/settings")
    check(b.el("tr[data-setting='ui.theme']").text == "ui.theme dark", "setting kept")
    b.type("#settings-current-password", "a long new passphrase")
    b.type("#settings-new-password", "the settings passphrase")
    b.type("#settings-confirm-password", "not the same", enter=True)
    check(b.wait_text("#page-error", ".") == "The new passwords do not match.", "mismatch")
    b.type("#settings-confirm-password", "the settings passphrase", enter=True)
    check(b.wait_text("#password-status", ".") == "Password changed.", f"changed: {b.text('#page-error')}")
    b.shot("settings")
    # The tab's new session works.
    b.open("/admin/viziers")
    b.el(f"tr[data-vizier='{args['vizier']}']")
    return {}


JOURNEYS = {
    "login": journey_login,
    "live": journey_live,
    "first_load": journey_first_load,
    "admin": journey_admin,
    "other_org": journey_other_org,
    "editor": journey_editor,
    "widgets": journey_widgets,
    "bundled": journey_bundled,
    "big": journey_big,
    "cron_settings": journey_cron_settings,
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("journey", choices=sorted(JOURNEYS))
    parser.add_argument("--base", required=True)
    parser.add_argument("--shots", required=True)
    parser.add_argument("--arg", action="append", default=[], help="KEY=VALUE passed to the journey")
    options = parser.parse_args()
    args = dict(a.split("=", 1) for a in options.arg)
    b = Browser(options.base, options.shots)
    try:
        facts = JOURNEYS[options.journey](b, args)
        b.check_console()
    finally:
        b.driver.quit()
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
