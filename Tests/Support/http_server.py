#!/usr/bin/env python3
"""A loopback HTTP file server for boxstack's download tests and benchmarks.

Serves the files under --root with GET/HEAD and single byte ranges (`Range: bytes=N-` or `N-M`),
over HTTP/1.1 keep-alive. It binds 127.0.0.1 on --port (0 picks a free one) and prints the port
on the first line of standard output.

Every request is appended to --log as one JSON line *before* its body is sent, so a test that has
finished reading a response always finds it logged:
    {"method": "GET", "path": "/box/disk.qcow2", "range": "bytes=100-", "status": 206, "bytes": 900}
`bytes` is the number of body bytes the server sends (or sends before failing on purpose).

Faults are read from --faults (a JSON list) on every request; the first rule whose `path` equals the
request path applies and is consumed (`count`, default 1):
    {"path": "/box/disk.qcow2", "action": "drop", "after": 65536}
actions:
    error     answer with HTTP `status` (default 500)
    truncate  announce the full length, send `after` bytes, then close the connection cleanly
    drop      announce the full length, send `after` bytes, then reset the connection
    corrupt   send the full body with the byte at offset `after` flipped
    no-range  answer a range request with 200 and the whole file, as a server without range support does
"""

import argparse
import json
import os
import signal
import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

SEND_CHUNK = 4 << 20


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "boxstack-test-http"
    # As web servers do: without it the body waits behind the headers' segment until the client's
    # delayed acknowledgement, about 40 ms per response on loopback.
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass

    def do_HEAD(self):
        self.serve(send_body=False)

    def do_GET(self):
        self.serve(send_body=True)

    def serve(self, send_body):
        path = unquote(urlsplit(self.path).path)
        fault = self.server.take_fault(path)
        action = fault.get("action") if fault else None
        local = os.path.realpath(os.path.join(self.server.root, path.lstrip("/")))
        if action == "error":
            return self.fail(fault.get("status", 500), path)
        if not local.startswith(self.server.root + os.sep) or not os.path.isfile(local):
            return self.fail(404, path)

        size = os.path.getsize(local)
        start, end = 0, size - 1
        range_header = self.headers.get("Range")
        status = 200
        if range_header and action != "no-range":
            parsed = parse_range(range_header, size)
            if parsed is None:
                self.server.log(self.command, path, range_header, 416, 0)
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{size}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            start, end = parsed
            status = 206
        length = end - start + 1 if size > 0 else 0

        planned = length
        if action in ("truncate", "drop"):
            planned = min(length, int(fault.get("after", 0)))
        self.server.log(self.command, path, range_header, status, planned if send_body else 0)

        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Accept-Ranges", "bytes")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.end_headers()
        if not send_body:
            return

        with open(local, "rb") as source:
            if action == "corrupt":
                self.send_corrupted(source, start, length, int(fault.get("after", 0)))
            else:
                self.connection.sendfile(source, offset=start, count=planned)
        if action == "truncate":
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_WR)
        elif action == "drop":
            self.close_connection = True
            # SO_LINGER with a zero timeout turns close() into a TCP reset.
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()

    def send_corrupted(self, source, start, length, flip_offset):
        source.seek(start)
        sent = 0
        while sent < length:
            chunk = bytearray(source.read(min(SEND_CHUNK, length - sent)))
            if sent <= flip_offset < sent + len(chunk):
                chunk[flip_offset - sent] ^= 0xFF
            self.wfile.write(chunk)
            sent += len(chunk)

    def fail(self, status, path):
        body = f"{status} for {path}\n".encode()
        self.server.log(self.command, path, self.headers.get("Range"), status, len(body))
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)


def parse_range(header, size):
    """Returns (start, end) for a single satisfiable `bytes=` range, else None."""
    if not header.startswith("bytes=") or "," in header:
        return None
    first, _, last = header[len("bytes="):].partition("-")
    try:
        if first == "":
            count = int(last)
            start, end = max(0, size - count), size - 1
        else:
            start = int(first)
            end = int(last) if last else size - 1
    except ValueError:
        return None
    end = min(end, size - 1)
    if start >= size or start > end:
        return None
    return start, end


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address, root, log_path, faults_path):
        super().__init__(address, Handler)
        self.root = os.path.realpath(root)
        self.log_path = log_path
        self.faults_path = faults_path
        self.lock = threading.Lock()

    def take_fault(self, path):
        if not self.faults_path:
            return None
        with self.lock:
            try:
                with open(self.faults_path) as handle:
                    rules = json.load(handle)
            except (FileNotFoundError, ValueError):
                return None
            for index, rule in enumerate(rules):
                if rule.get("path") == path:
                    remaining = int(rule.get("count", 1)) - 1
                    if remaining > 0:
                        rule["count"] = remaining
                    else:
                        del rules[index]
                    temporary = self.faults_path + ".tmp"
                    with open(temporary, "w") as handle:
                        json.dump(rules, handle)
                    os.replace(temporary, self.faults_path)
                    return rule
        return None

    def log(self, method, path, range_header, status, sent):
        if not self.log_path:
            return
        line = json.dumps({"method": method, "path": path, "range": range_header, "status": status, "bytes": sent})
        with self.lock, open(self.log_path, "a") as handle:
            handle.write(line + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", required=True)
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--log")
    parser.add_argument("--faults")
    arguments = parser.parse_args()
    # A parent that blocks signals on its threads (Swift's test runner does) passes the mask on;
    # unblock them so the server stops when asked.
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})
    server = Server(("127.0.0.1", arguments.port), arguments.root, arguments.log, arguments.faults)
    print(server.server_address[1], flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    sys.exit(main())
