#!/usr/bin/env python3
"""A small OCI registry that misbehaves on purpose, for boxstack's registry client tests.

It serves the images of the OCI layout --layout (tags from index.json's ref.name annotations,
manifests and blobs by digest) and accepts pushes into it, on two HTTP listeners on 127.0.0.1:
"registry", the registry itself, and "other", a second port that plays another host (a token
service, a storage host that takes uploads, a CDN that serves redirected blobs). With
--unix-socket it also listens there ("unix"). It prints {"registry": PORT, "other": PORT} on the
first line of standard output.

Every request is appended to --log as one JSON line before it is answered, naming the listener
and the Authorization header it carried:
    {"listener": "other", "method": "PUT", "path": "/upload/1?digest=...", "authorization": null}

Authentication of the registry listener (the other listeners never ask):
    --basic USER:PASSWORD   HTTP Basic on every request
    --realm URL             Bearer tokens from URL ("{other}" becomes the other port); the other
                            listener issues them at /token

--fault picks what goes wrong:
    stall-manifest, stall-blob      send the response head, then nothing
    trickle-manifest, trickle-blob  send the body one byte a second
    stall-upload                    never read an upload's body, never answer
    redirect-blob                   blob GETs are redirected (307) to the other listener
    redirect-loop                   blob GETs are redirected to themselves, forever
    upload-elsewhere                upload sessions live on the other listener
    hostile                         manifest "missing" is a 404 and manifest "strange" has a media
                                    type, both with terminal escape sequences
A fault that waits gives up after two minutes, so a stuck test still ends.
"""

import argparse
import base64
import hashlib
import json
import os
import signal
import socketserver
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

LONGEST_WAIT = 120
TOKEN = "fault-test-token"
ESCAPES = "\x1b]0;owned\x07\x1b[2J\x1b[31m"


class Registry:
    """What the listeners share: the layout, pushed tags, open uploads, the log, the options."""

    def __init__(self, arguments):
        self.layout = os.path.realpath(arguments.layout)
        self.log_path = arguments.log
        self.fault = arguments.fault
        self.basic = "Basic " + base64.b64encode(arguments.basic.encode()).decode() if arguments.basic else None
        self.realm = arguments.realm
        self.lock = threading.Lock()
        self.tags = {}
        self.uploads = {}
        self.ports = {}

    def log(self, listener, method, path, authorization):
        line = json.dumps({"listener": listener, "method": method, "path": path, "authorization": authorization})
        with self.lock, open(self.log_path, "a") as handle:
            handle.write(line + "\n")

    def blob_path(self, digest):
        algorithm, _, hex_digest = digest.partition(":")
        if algorithm != "sha256" or len(hex_digest) != 64 or not all(c in "0123456789abcdef" for c in hex_digest):
            return None
        return os.path.join(self.layout, "blobs", "sha256", hex_digest)

    def store_blob(self, data):
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        path = self.blob_path(digest)
        temporary = path + ".tmp-" + uuid.uuid4().hex
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
        return digest

    def manifest(self, reference):
        """(bytes, media type) of a manifest by tag or digest, or None."""
        with self.lock:
            if reference in self.tags:
                return self.tags[reference]
        digest = reference
        media_type = None
        if not reference.startswith("sha256:"):
            with open(os.path.join(self.layout, "index.json")) as handle:
                entries = json.load(handle).get("manifests", [])
            matching = [e for e in entries if (e.get("annotations") or {}).get("org.opencontainers.image.ref.name") == reference]
            if not matching:
                return None
            digest, media_type = matching[-1]["digest"], matching[-1]["mediaType"]
        path = self.blob_path(digest)
        if not path or not os.path.isfile(path):
            return None
        with open(path, "rb") as handle:
            data = handle.read()
        return data, media_type or json.loads(data).get("mediaType") or "application/vnd.oci.image.manifest.v1+json"

    def other_url(self, path):
        return f"http://127.0.0.1:{self.ports['other']}{path}"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "boxstack-fault-registry"

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    @property
    def registry(self):
        return self.server.registry

    def do_GET(self):
        self.handle_request()

    def do_HEAD(self):
        self.handle_request()

    def do_POST(self):
        self.handle_request()

    def do_PUT(self):
        self.handle_request()

    def do_PATCH(self):
        self.handle_request()

    def do_DELETE(self):
        self.handle_request()

    def handle_request(self):
        listener = self.server.listener
        self.registry.log(listener, self.command, self.path, self.headers.get("Authorization"))
        url = urlsplit(self.path)
        try:
            if listener == "registry":
                self.serve_registry(url)
            else:
                self.serve_other(url)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    # The registry listener.

    def serve_registry(self, url):
        if not self.authorized():
            return
        parts = url.path.split("/")
        if url.path == "/v2/":
            return self.answer(200, b"{}", "application/json")
        if url.path.startswith("/upload/"):
            return self.serve_upload(url)
        if len(parts) < 5 or parts[1] != "v2":
            return self.answer(404, b"", "text/plain")
        if parts[-2] == "manifests":
            return self.serve_manifest(parts[-1])
        if parts[-2] == "blobs":
            return self.serve_blob(parts[-1], "/".join(parts[2:-2]))
        if parts[-2:] == ["uploads", ""] and self.command == "POST":
            return self.start_upload()
        return self.answer(404, b"", "text/plain")

    def authorized(self):
        given = self.headers.get("Authorization")
        if self.registry.basic and given != self.registry.basic:
            self.answer(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', "application/json",
                        {"WWW-Authenticate": 'Basic realm="fault-registry"'})
            return False
        if self.registry.realm and given != "Bearer " + TOKEN:
            realm = self.registry.realm.replace("{other}", str(self.registry.ports["other"]))
            self.answer(401, b'{"errors":[{"code":"UNAUTHORIZED"}]}', "application/json",
                        {"WWW-Authenticate": f'Bearer realm="{realm}",service="fault-registry"'})
            return False
        return True

    def serve_manifest(self, reference):
        fault = self.registry.fault
        if self.command == "PUT":
            data = self.read_body()
            media_type = self.headers.get("Content-Type", "")
            digest = self.registry.store_blob(data)
            with self.registry.lock:
                self.registry.tags[reference] = (data, media_type)
            return self.answer(201, b"", "text/plain", {"Docker-Content-Digest": digest})
        if fault == "hostile" and reference == "missing":
            body = json.dumps({"errors": [{"code": "MANIFEST_UNKNOWN", "message": ESCAPES + "gone"}]}).encode()
            return self.answer(404, body, "application/json")
        if fault == "hostile" and reference == "strange":
            body = json.dumps({"schemaVersion": 2, "mediaType": "application/" + ESCAPES + "strange"}).encode()
            return self.answer(200, body, "application/json")
        found = self.registry.manifest(reference)
        if not found:
            return self.answer(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', "application/json")
        data, media_type = found
        headers = {"Docker-Content-Digest": "sha256:" + hashlib.sha256(data).hexdigest()}
        self.answer(200, data, media_type, headers, misbehave=fault in ("stall-manifest", "trickle-manifest"))

    def serve_blob(self, digest, repository):
        fault = self.registry.fault
        path = self.registry.blob_path(digest)
        if not path or not os.path.isfile(path):
            return self.answer(404, b'{"errors":[{"code":"BLOB_UNKNOWN"}]}', "application/json")
        if self.command == "GET" and fault == "redirect-blob":
            return self.answer(307, b"", "text/plain", {"Location": self.registry.other_url("/cdn/" + digest)})
        if self.command == "GET" and fault == "redirect-loop":
            return self.answer(307, b"", "text/plain", {"Location": f"/v2/{repository}/blobs/{digest}"})
        with open(path, "rb") as handle:
            data = handle.read()
        self.answer(200, data, "application/octet-stream", {"Docker-Content-Digest": digest},
                    misbehave=self.command == "GET" and fault in ("stall-blob", "trickle-blob"))

    def start_upload(self):
        self.read_body()
        upload = uuid.uuid4().hex
        with self.registry.lock:
            self.registry.uploads[upload] = bytearray()
        if self.registry.fault == "upload-elsewhere":
            location = self.registry.other_url("/upload/" + upload)
        else:
            location = "/upload/" + upload
        self.answer(202, b"", "text/plain", {"Location": location})

    # The other listeners, and upload sessions on any listener.

    def serve_other(self, url):
        if url.path == "/token":
            return self.answer(200, json.dumps({"token": TOKEN}).encode(), "application/json")
        if url.path.startswith("/cdn/"):
            path = self.registry.blob_path(url.path[len("/cdn/"):])
            if not path or not os.path.isfile(path):
                return self.answer(404, b"", "text/plain")
            with open(path, "rb") as handle:
                return self.answer(200, handle.read(), "application/octet-stream")
        if url.path.startswith("/upload/"):
            return self.serve_upload(url)
        self.answer(404, b"", "text/plain")

    def serve_upload(self, url):
        upload = url.path[len("/upload/"):]
        with self.registry.lock:
            known = upload in self.registry.uploads
        if not known:
            return self.answer(404, b'{"errors":[{"code":"BLOB_UPLOAD_UNKNOWN"}]}', "application/json")
        if self.command == "DELETE":
            with self.registry.lock:
                del self.registry.uploads[upload]
            return self.answer(204, b"", "text/plain")
        if self.registry.fault == "stall-upload":
            time.sleep(LONGEST_WAIT)
            self.close_connection = True
            return
        data = self.read_body()
        with self.registry.lock:
            self.registry.uploads[upload] += data
            received = bytes(self.registry.uploads[upload])
        location = self.registry.other_url(url.path) if self.server.listener == "other" else url.path
        if self.command == "PATCH":
            return self.answer(202, b"", "text/plain", {"Location": location, "Range": f"0-{len(received) - 1}"})
        expected = parse_qs(url.query).get("digest", [""])[0]
        if "sha256:" + hashlib.sha256(received).hexdigest() != expected:
            return self.answer(400, b'{"errors":[{"code":"DIGEST_INVALID"}]}', "application/json")
        self.registry.store_blob(received)
        with self.registry.lock:
            del self.registry.uploads[upload]
        self.answer(201, b"", "text/plain", {"Docker-Content-Digest": expected})

    # Helpers.

    def read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def answer(self, status, body, content_type, headers=None, misbehave=False):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command == "HEAD":
            return
        fault = self.registry.fault
        if misbehave and fault.startswith("stall-"):
            self.wfile.flush()
            time.sleep(LONGEST_WAIT)
            self.close_connection = True
        elif misbehave and fault.startswith("trickle-"):
            started = time.monotonic()
            for offset in range(len(body)):
                if time.monotonic() - started > LONGEST_WAIT:
                    break
                self.wfile.write(body[offset:offset + 1])
                self.wfile.flush()
                time.sleep(1)
            self.close_connection = True
        else:
            self.wfile.write(body)


class TCPListener(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, listener, registry):
        super().__init__(("127.0.0.1", 0), Handler)
        self.listener = listener
        self.registry = registry


class UnixListener(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def __init__(self, path, registry):
        super().__init__(path, Handler)
        self.listener = "unix"
        self.registry = registry

    def get_request(self):
        connection, _ = super().get_request()
        # BaseHTTPRequestHandler expects a (host, port) client address.
        return connection, ("unix", 0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layout", required=True)
    parser.add_argument("--log", required=True)
    parser.add_argument("--fault", default="none")
    parser.add_argument("--basic")
    parser.add_argument("--realm")
    parser.add_argument("--unix-socket")
    arguments = parser.parse_args()
    # A parent that blocks signals on its threads (Swift's test runner does) passes the mask on.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    registry = Registry(arguments)
    servers = {"registry": TCPListener("registry", registry), "other": TCPListener("other", registry)}
    for name, server in servers.items():
        registry.ports[name] = server.server_address[1]
    if arguments.unix_socket:
        servers["unix"] = UnixListener(arguments.unix_socket, registry)
    for server in servers.values():
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print(json.dumps({"registry": registry.ports["registry"], "other": registry.ports["other"]}), flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
