"""Drives the status page in a real browser (headless Chromium through
Selenium) while load flows, and checks what a person would read on it.

Run by tests/status_page.rs, which starts two servers (one without API keys,
one with) and passes their addresses. Everything asserted here is read from
the page's DOM text, never from /api/status. Prints one JSON line of what it
saw; exits non-zero with the reason on any failure.
"""

import argparse
import json
import os
import re
import subprocess
import sys
import time

from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By

GROUP = "lagging"
CLIENTS = "2"


def fail(msg, seen=None):
    print(f"FAIL: {msg}" + (f"\nseen: {json.dumps(seen)}" if seen else ""), file=sys.stderr)
    sys.exit(1)


def browser(chromium, chromedriver):
    opts = Options()
    opts.binary_location = chromium
    for arg in ("--headless=new", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1280,1900", "--no-first-run"):
        opts.add_argument(arg)
    if os.geteuid() == 0:
        # Chromium refuses to run as root inside its sandbox.
        opts.add_argument("--no-sandbox")
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(executable_path=chromedriver), options=opts)


def text(d, element_id):
    """The element's text as the page shows it now. Read in one script call:
    the page redraws its tables every refresh, so an element found by one
    call may be gone by the next."""
    return d.execute_script(
        "const e = document.getElementById(arguments[0]); return e ? e.textContent : null;",
        element_id)


def number(s):
    """`1,234.5` → 1234.5; None for `—` or a missing element."""
    if s is None:
        return None
    m = re.search(r"-?[\d,]+(\.\d+)?", s)
    return float(m.group(0).replace(",", "")) if m else None


def size(s):
    """`12.3 MiB` → bytes."""
    m = re.fullmatch(r"([\d.]+) (B|KiB|MiB|GiB|TiB)", s.strip())
    if not m:
        fail(f"not a size: {s!r}")
    return float(m.group(1)) * 1024 ** ["B", "KiB", "MiB", "GiB", "TiB"].index(m.group(2))


def wait(what, timeout, check, seen=None):
    end = time.time() + timeout
    while time.time() < end:
        got = check()
        if got:
            return got
        time.sleep(0.25)
    fail(f"timed out after {timeout} s waiting for {what}", seen)


def severe(d, allowed=()):
    """SEVERE browser log entries that are not expected answers."""
    bad = []
    for entry in d.get_log("browser"):
        if entry["level"] != "SEVERE":
            continue
        if any(a in entry["message"] for a in allowed):
            continue
        bad.append(entry)
    return bad


def consume(binary, data_dir):
    out = subprocess.run(
        [binary, "consume", "--group", GROUP, "--from-beginning", "--exit-at-end",
         "--data-dir", data_dir],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)
    if out.returncode != 0:
        fail(f"consume failed: {out.stderr.decode(errors='replace')}")


def bench(binary, url, fmt, extra):
    return [binary, "bench", "--keep-alive", "--quiet", "--clients", CLIENTS,
            "--format", fmt, "--url", url, *extra]


def main():
    ap = argparse.ArgumentParser()
    for a in ("--url", "--keyed-url", "--key", "--bin", "--data-dir", "--screenshot",
              "--chromium", "--chromedriver"):
        ap.add_argument(a, required=True)
    args = ap.parse_args()
    json_url = f"{args.url}/metrics"
    influx_url = f"{args.url}/write?db=status"
    seen = {"rates": [], "lag": []}

    # The group reads what the same clients sent first, so it has a commit
    # in each partition the load will go to; then it stops: it falls behind.
    for fmt, url in (("json", json_url), ("influx", influx_url)):
        subprocess.run(bench(args.bin, url, fmt, ["--requests", "2", "--samples-per-request", "30"]), check=True,
                       stdout=subprocess.DEVNULL, timeout=60)
    consume(args.bin, args.data_dir)

    d = browser(args.chromium, args.chromedriver)
    try:
        d.get(args.url + "/")
        wait("the first figures", 15, lambda: d.find_element(By.ID, "data").is_displayed())
        wait("the group's lag to read 0", 10, lambda: number(text(d, f"group-{GROUP}-lag")) == 0)
        # The priming requests leave the 5 s "now" window first.
        wait("both rates to read 0 before the load", 15,
             lambda: all(number(text(d, f"rate-{p}-samples")) == 0 for p in ("json", "influx")))
        before = {p: number(text(d, f"rate-{p}-samples")) for p in ("json", "influx")}
        seen["before"] = before

        load = [
            subprocess.Popen(bench(args.bin, json_url, "json", ["--duration", "8s", "--rate", "100"]),
                             stdout=subprocess.DEVNULL),
            subprocess.Popen(bench(args.bin, influx_url, "influx", ["--duration", "8s", "--rate", "60", "--samples-per-request", "30"]),
                             stdout=subprocess.DEVNULL),
        ]
        while any(p.poll() is None for p in load):
            seen["rates"].append({p: number(text(d, f"rate-{p}-samples")) for p in ("json", "influx")})
            seen["lag"].append(number(text(d, f"group-{GROUP}-lag")))
            time.sleep(0.5)
        for p in load:
            if p.returncode != 0:
                fail(f"bench exited {p.returncode}")
        # Read the last figures the page shows after the load.
        time.sleep(2)
        seen["lag"].append(number(text(d, f"group-{GROUP}-lag")))

        for p in ("json", "influx"):
            peak = max(r[p] or 0 for r in seen["rates"])
            if not (before[p] == 0 and peak > 0):
                fail(f"{p}: samples/s did not rise from 0 (before {before[p]}, peak {peak})", seen)
        lags = [x for x in seen["lag"] if x is not None]
        rises = sum(1 for a, b in zip(lags, lags[1:]) if b > a)
        if rises < 3 or lags[-1] <= lags[0]:
            fail("the group's lag did not grow while its consumer was stopped", seen)
        seen["lag_seconds_behind"] = text(d, f"group-{GROUP}-lag-seconds")

        consume(args.bin, args.data_dir)
        wait("the group's lag back to 0 after it caught up", 15,
             lambda: number(text(d, f"group-{GROUP}-lag")) == 0, seen)
        seen["lag"].append(0)

        # Disk: what the page says against du of the same directory.
        time.sleep(1.6)
        shown = size(text(d, "disk-used"))
        du = int(subprocess.run(["du", "-s", "-B1", args.data_dir], check=True,
                                capture_output=True, text=True).stdout.split()[0])
        seen["disk"] = {"page": text(d, "disk-used"), "du": du}
        if abs(shown - du) > max(0.05 * du, 128 << 10):
            fail(f"disk used: the page shows {shown:.0f} bytes, du {du}", seen)
        seen["outage"] = text(d, "disk-outage")
        if "hours" not in seen["outage"]:
            fail(f"no outage hours at a non-zero write rate: {seen['outage']!r}", seen)
        bad = severe(d)
        if bad:
            fail(f"browser console errors: {bad}", seen)
        d.save_screenshot(args.screenshot)

        # With API keys: no key → the 401 message and no figures; the key
        # entered in the page's field → figures.
        d.get(args.keyed_url + "/")
        message = wait("the 401 message", 10,
                       lambda: d.find_element(By.ID, "message").is_displayed()
                       and d.find_element(By.ID, "message").text)
        seen["unauthorized"] = message
        if "401" not in message:
            fail(f"the message is not the 401: {message!r}", seen)
        if d.find_element(By.ID, "data").is_displayed() or "Flowing in" in d.find_element(By.TAG_NAME, "body").text:
            fail("figures shown without a key", seen)
        d.find_element(By.ID, "key").send_keys(args.key)
        d.find_element(By.CSS_SELECTOR, "#key-form button[type=submit]").click()
        wait("figures once the key is entered", 10,
             lambda: d.find_element(By.ID, "data").is_displayed())
        if args.key in d.find_element(By.TAG_NAME, "body").text:
            fail("the page shows the key", seen)
        # The one expected SEVERE entry: Chromium logs the 401 answer itself.
        bad = severe(d, allowed=("/api/status - Failed to load resource: the server responded with a status of 401",))
        if bad:
            fail(f"browser console errors: {bad}", seen)
    finally:
        d.quit()
    print(json.dumps(seen))


if __name__ == "__main__":
    main()
