#!/usr/bin/env python3
"""A Docker token-authentication server for docker-registry's `auth: token` config (tests only).

GET /token?service=S&scope=repository:NAME:ACTIONS... checks HTTP Basic credentials against
--user/--password and answers {"token": JWT} with the requested access granted. The JWT is signed
RS256 with --key through the openssl command line and carries --cert in its x5c header, which the
registry verifies against its rootcertbundle (the same certificate).
Usage: registry_token_server.py --port P --key K --cert C --issuer I --service S --user U --password W
"""
import argparse
import base64
import json
import subprocess
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main():
    parser = argparse.ArgumentParser()
    for name in ("--port", "--key", "--cert", "--issuer", "--service", "--user", "--password"):
        parser.add_argument(name, required=True)
    args = parser.parse_args()
    with open(args.cert) as handle:
        pem = handle.read()
    body = "".join(line for line in pem.splitlines() if line and not line.startswith("-----"))
    certificate_der = base64.b64encode(base64.b64decode(body)).decode()
    expected = "Basic " + base64.b64encode(f"{args.user}:{args.password}".encode()).decode()

    def sign(claims):
        header = {"typ": "JWT", "alg": "RS256", "x5c": [certificate_der]}
        signing_input = b64url(json.dumps(header).encode()) + "." + b64url(json.dumps(claims).encode())
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", args.key],
            input=signing_input.encode(), capture_output=True, check=True).stdout
        return signing_input + "." + b64url(signature)

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *arguments):
            pass

        def do_GET(self):
            url = urlparse(self.path)
            if url.path != "/token":
                self.send_error(404)
                return
            if self.headers.get("Authorization") != expected:
                self.send_response(401)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"details":"wrong user name or password"}')
                return
            query = parse_qs(url.query)
            access = []
            for scope in query.get("scope", []):
                for part in scope.split(" "):
                    kind, _, rest = part.partition(":")
                    name, _, actions = rest.rpartition(":")
                    access.append({"type": kind, "name": name, "actions": actions.split(",")})
            now = int(time.time())
            claims = {
                "iss": args.issuer, "sub": args.user, "aud": query.get("service", [""])[0],
                "exp": now + 300, "nbf": now - 10, "iat": now, "jti": str(uuid.uuid4()), "access": access,
            }
            payload = json.dumps({"token": sign(claims), "expires_in": 300}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    ThreadingHTTPServer(("127.0.0.1", int(args.port)), Handler).serve_forever()


if __name__ == "__main__":
    main()
