#!/bin/bash
# KIWI runs this in the derived image's root after installing its packages; the base's config.sh does not run again.
set -e
echo "tiny-debian-derived" > /etc/boxstack-derived
