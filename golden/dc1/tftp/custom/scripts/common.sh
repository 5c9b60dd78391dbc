#!/bin/sh
# Stand-in custom-config for examples/dc1 (a test value, not a real site script).
# Apstra's ztp.py runs the custom-config script on the device during ZTP, before the
# system agent is installed. Every platform gets this one unless it sets its own.
set -eu
echo "ztp: common custom-config ran on $(hostname)"
