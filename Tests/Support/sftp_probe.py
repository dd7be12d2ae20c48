#!/usr/bin/env python3
"""A minimal SFTP v3 client on stdin/stdout, standing in for `sshfs -o passive` in tests.

usage: sftp_probe.py DIR
Lists DIR (names go to stderr as "name: NAME"), then writes DIR/from-guest.txt.
Exits 0 when every step got the answer the protocol promises.
"""
import struct
import sys

SSH_FXP_INIT, SSH_FXP_VERSION = 1, 2
SSH_FXP_OPEN, SSH_FXP_CLOSE, SSH_FXP_WRITE = 3, 4, 6
SSH_FXP_OPENDIR, SSH_FXP_READDIR = 11, 12
SSH_FXP_STATUS, SSH_FXP_HANDLE, SSH_FXP_NAME = 101, 102, 104
SSH_FX_OK, SSH_FX_EOF = 0, 1

out, inp = sys.stdout.buffer, sys.stdin.buffer


def send(kind, payload):
    out.write(struct.pack(">IB", len(payload) + 1, kind) + payload)
    out.flush()


def read_exact(count):
    data = b""
    while len(data) < count:
        chunk = inp.read(count - len(data))
        if not chunk:
            sys.exit("sftp_probe: stream ended early")
        data += chunk
    return data


def receive():
    length, kind = struct.unpack(">IB", read_exact(5))
    return kind, read_exact(length - 1)


def string(value):
    return struct.pack(">I", len(value)) + value


def take_string(data, offset):
    (length,) = struct.unpack_from(">I", data, offset)
    return data[offset + 4 : offset + 4 + length], offset + 4 + length


def skip_attrs(data, offset):
    (flags,) = struct.unpack_from(">I", data, offset)
    offset += 4
    if flags & 0x1:
        offset += 8
    if flags & 0x2:
        offset += 8
    if flags & 0x4:
        offset += 4
    if flags & 0x8:
        offset += 8
    if flags & 0x80000000:
        (count,) = struct.unpack_from(">I", data, offset)
        offset += 4
        for _ in range(2 * count):
            _, offset = take_string(data, offset)
    return offset


def expect_handle(request_id):
    kind, data = receive()
    if kind != SSH_FXP_HANDLE:
        sys.exit(f"sftp_probe: request {request_id} got packet type {kind}, not a handle")
    handle, _ = take_string(data, 4)
    return handle


def expect_ok(request_id):
    kind, data = receive()
    status = struct.unpack_from(">I", data, 4)[0] if kind == SSH_FXP_STATUS else None
    if status != SSH_FX_OK:
        sys.exit(f"sftp_probe: request {request_id} failed (packet {kind}, status {status})")


directory = sys.argv[1].encode()
send(SSH_FXP_INIT, struct.pack(">I", 3))
kind, data = receive()
if kind != SSH_FXP_VERSION:
    sys.exit(f"sftp_probe: expected a version packet, got type {kind}")
print(f"version: {struct.unpack_from('>I', data)[0]}", file=sys.stderr, flush=True)

send(SSH_FXP_OPENDIR, struct.pack(">I", 1) + string(directory))
handle = expect_handle(1)
while True:
    send(SSH_FXP_READDIR, struct.pack(">I", 2) + string(handle))
    kind, data = receive()
    if kind == SSH_FXP_STATUS and struct.unpack_from(">I", data, 4)[0] == SSH_FX_EOF:
        break
    if kind != SSH_FXP_NAME:
        sys.exit(f"sftp_probe: readdir got packet type {kind}")
    (count,) = struct.unpack_from(">I", data, 4)
    offset = 8
    for _ in range(count):
        name, offset = take_string(data, offset)
        _, offset = take_string(data, offset)
        offset = skip_attrs(data, offset)
        print(f"name: {name.decode()}", file=sys.stderr, flush=True)
send(SSH_FXP_CLOSE, struct.pack(">I", 3) + string(handle))
expect_ok(3)

write_create_truncate = 0x02 | 0x08 | 0x10
send(SSH_FXP_OPEN, struct.pack(">I", 4) + string(directory + b"/from-guest.txt")
     + struct.pack(">II", write_create_truncate, 0))
handle = expect_handle(4)
send(SSH_FXP_WRITE, struct.pack(">I", 5) + string(handle) + struct.pack(">Q", 0) + string(b"hello from the guest\n"))
expect_ok(5)
send(SSH_FXP_CLOSE, struct.pack(">I", 6) + string(handle))
expect_ok(6)
