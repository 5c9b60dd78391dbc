#!/bin/sh
# Stand-in Junos custom-config for examples/campus (a test value, not a real site script).
# Runs on the switch during ZTP, before the system agent is installed.
set -eu
cli -c "configure; set system services netconf ssh; set system commit synchronize; commit and-quit"
