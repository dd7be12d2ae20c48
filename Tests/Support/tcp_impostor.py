#!/usr/bin/env python3
"""Stands in for QEMU's user-mode port forward while a box boots.

usage: tcp_impostor.py PORT reset|silent|late SECONDS TARGET_PORT
  reset:  accept every connection and reset it at once (the guest's port is closed)
  silent: accept every connection and never send a byte (the guest is not up yet)
  late:   connections accepted in the first SECONDS stay silent for good (their SYN is stuck in
          the user-mode network's retransmit backoff); later ones are relayed to TARGET_PORT
Runs until killed. Prints "ready" once listening.
"""
import socket
import struct
import sys
import threading
import time


def relay(source, destination):
    while True:
        data = source.recv(65536)
        if not data:
            destination.shutdown(socket.SHUT_WR)
            return
        destination.sendall(data)


port, mode = int(sys.argv[1]), sys.argv[2]
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(64)
print("ready", flush=True)
started = time.monotonic()
held = []
while True:
    connection, _ = listener.accept()
    if mode == "reset":
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()
    elif mode == "late" and time.monotonic() - started >= float(sys.argv[3]):
        upstream = socket.create_connection(("127.0.0.1", int(sys.argv[4])))
        for pair in ((connection, upstream), (upstream, connection)):
            threading.Thread(target=relay, args=pair, daemon=True).start()
    else:
        held.append(connection)
