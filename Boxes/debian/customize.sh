#!/bin/sh
# Runs inside the box's root tree (chroot) after all packages are installed.
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
set -eu

# Root has no password; the only way in is the per-run key the seed share provides.
usermod -p '*' root
install -d -m 0700 /root/.ssh
# KIWI imports repository signing keys with gpg, which needs a home directory it will not create itself.
install -d -m 0700 /root/.gnupg
rm -f /root/.ssh/authorized_keys

# No shared host keys: each run brings its own through the seed share.
rm -f /etc/ssh/ssh_host_*

systemctl enable systemd-networkd.service boxstack-seed.service ssh.service

# Units that only cost boot time in a throw-away VM.
systemctl mask \
    systemd-networkd-wait-online.service \
    apt-daily.timer apt-daily-upgrade.timer dpkg-db-backup.timer \
    e2scrub_all.timer e2scrub_reap.service fstrim.timer \
    systemd-tmpfiles-clean.timer \
    systemd-firstboot.service systemd-hwdb-update.service ldconfig.service \
    systemd-journal-catalog-update.service systemd-update-done.service \
    systemd-fsck-root.service systemd-pstore.service \
    systemd-logind.service \
    dev-hugepages.mount sys-kernel-debug.mount sys-kernel-tracing.mount \
    getty@tty1.service \
    ssh.socket
systemctl set-default multi-user.target

# An empty machine-id makes systemd create a fresh one per boot.
: > /etc/machine-id
rm -f /var/lib/dbus/machine-id

# Rebuild the initramfs with the module list and settings from the overlay.
update-initramfs -u -k all

rm -rf /var/cache/apt/archives/*.deb /var/lib/apt/lists/* /var/log/*.log /var/log/apt/*
