"""Drives the sandbox identity platform with Microsoft's MSAL for Python.

Usage: python3 fidelity.py CONFIG.json  (written by tests/msal_fidelity.rs)
Prints one line per step and exits non-zero on the first failure.
"""
import json
import sys
from html.parser import HTMLParser
from urllib.parse import urlparse, parse_qs

import msal
import requests

cfg = json.load(open(sys.argv[1]))
authority = cfg["authority"]
verify = cfg["ca_file"]
graph_default = ["https://graph.microsoft.com/.default"]


def check(cond, what):
    if not cond:
        print("FAIL:", what)
        sys.exit(1)
    print("ok:", what)


# 1. client credentials with a secret
app = msal.ConfidentialClientApplication(
    cfg["daemon_id"], client_credential=cfg["daemon_secret"], authority=authority,
    instance_discovery=False, verify=verify)
r = app.acquire_token_for_client(scopes=graph_default)
check("access_token" in r, "client credentials with secret: %s" % {k: v for k, v in r.items() if k != "access_token"})

# 2. client credentials with a certificate
app = msal.ConfidentialClientApplication(
    cfg["daemon_id"], authority=authority, instance_discovery=False, verify=verify,
    client_credential={"private_key": cfg["cert_key_pem"], "thumbprint": cfg["cert_thumbprint"]})
r = app.acquire_token_for_client(scopes=graph_default)
check("access_token" in r, "client credentials with certificate: %s" % {k: v for k, v in r.items() if k != "access_token"})

# 3. authorization code + PKCE, sign-in page driven by plain HTTP
pub = msal.PublicClientApplication(cfg["desktop_id"], authority=authority,
                                   instance_discovery=False, verify=verify)
flow = pub.initiate_auth_code_flow(["https://graph.microsoft.com/Mail.ReadWrite"],
                                   redirect_uri="http://localhost:8400")
check("auth_uri" in flow, "initiate_auth_code_flow")
s = requests.Session()
s.verify = verify
page = s.get(flow["auth_uri"])
check(page.status_code == 200, "sign-in page served")


class FormParser(HTMLParser):
    def __init__(self):
        super().__init__()
        self.action, self.hidden = None, {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.action = a.get("action")
        if tag == "input" and a.get("type") == "hidden":
            self.hidden[a["name"]] = a.get("value", "")


p = FormParser()
p.feed(page.text)
form = dict(p.hidden, username="megan@contoso.test", action="accept")
base = "{0.scheme}://{0.netloc}".format(urlparse(flow["auth_uri"]))
resp = s.post(base + p.action, data=form, allow_redirects=False)
check(resp.status_code in (302, 303), "consent accepted (%s)" % resp.status_code)
auth_response = {k: v[0] for k, v in parse_qs(urlparse(resp.headers["location"]).query).items()}
r = pub.acquire_token_by_auth_code_flow(flow, auth_response)
check("access_token" in r and "refresh_token" in r, "acquire_token_by_auth_code_flow: %s" % r.get("error_description"))
check(r.get("id_token_claims", {}).get("preferred_username") == "megan@contoso.test", "id token claims")

# 4. refresh token
r2 = pub.acquire_token_by_refresh_token(r["refresh_token"], ["https://graph.microsoft.com/Mail.ReadWrite"])
check("access_token" in r2, "acquire_token_by_refresh_token: %s" % r2.get("error_description"))
accounts = pub.get_accounts()
check(len(accounts) >= 1, "account cached")
r3 = pub.acquire_token_silent(["https://graph.microsoft.com/Mail.ReadWrite"], account=accounts[0], force_refresh=True)
check(r3 is not None and "access_token" in r3, "acquire_token_silent(force_refresh)")
print("ALL OK")
