#!/bin/sh
# /usr/lib/vmtest/run in the Debian root: what its two units run
# (guest-root-init.sh writes them).
#   prepare   vmtest-prepare.service, before libvirtd and vfio-resetd: the
#             scenario's own `prepare` step (`scenario.sh prepare`: files
#             libvirtd must find when it starts)
#   scenario  vmtest-scenario.service, after multi-user.target and libvirtd:
#             once the boot is done, the scenario, then power off
set -u
# shellcheck source=/dev/null
. /usr/lib/vmtest/vmtest.sh
# Where `make install` put the programs, when its prefix is not on PATH, and
# the test programs (bar-peer, holder).
PATH=${VMTEST_INSTALLED_PATH:+$VMTEST_INSTALLED_PATH:}/usr/lib/vmtest/bin:$PATH
export PATH

case $1 in
prepare)
	sh /usr/lib/vmtest/scenario.sh prepare ||
		vmtest_fail "$VMTEST_SCENARIO" "its prepare step exited with status $?"
	;;
scenario)
	state=$(timeout 120 systemctl is-system-running --wait 2>&1)
	vmtest_info "init: systemd $state: $(systemd-analyze time 2>&1 | head -n 1)"
	vmtest_info "init: failed units: $(systemctl --failed --no-legend --plain | awk '{ print $1 }' | tr '\n' ' ')"
	vmtest_run_scenario /usr/lib/vmtest/scenario.sh vmtest_root_journal
	echo o >/proc/sysrq-trigger
	;;
esac
