#!/bin/bash
# KIWI's config.sh for every KIWI-built box (Scripts/build-box copies it into the description).
# Does what Boxes/debian/customize.sh does for the Debian box.
set -euo pipefail

# Root has no password; the only way in is the per-run key the seed share provides.
usermod -p '*' root
install -d -m 0700 /root/.ssh
rm -f /root/.ssh/authorized_keys

# No shared host keys: each run brings its own through the seed share.
rm -f /etc/ssh/ssh_host_*

ssh_unit=sshd.service
[ -e /usr/lib/systemd/system/sshd.service ] || [ -e /lib/systemd/system/sshd.service ] || ssh_unit=ssh.service
systemctl enable systemd-networkd.service boxstack-seed.service "$ssh_unit"
systemctl mask systemd-networkd-wait-online.service systemd-firstboot.service \
    systemd-hwdb-update.service systemd-logind.service getty@tty1.service
systemctl set-default multi-user.target

: > /etc/machine-id
