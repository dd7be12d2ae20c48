#!/usr/bin/env python3
"""Stands in for QEMU's user-mode port forward while a box boots.

usage: tcp_impostor.py PORT reset|silent
  reset:  accept every connection and reset it at once (the guest's port is closed)
  silent: accept every connection and never send a byte (the guest is not up yet)
Runs until killed. Prints "ready" once listening.
"""
import socket
import struct
import sys
import time

port, mode = int(sys.argv[1]), sys.argv[2]
listener = socket.socket()
listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
listener.bind(("127.0.0.1", port))
listener.listen(64)
print("ready", flush=True)
held = []
while True:
    connection, _ = listener.accept()
    if mode == "reset":
        connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        connection.close()
    else:
        held.append(connection)
        time.sleep(0)
