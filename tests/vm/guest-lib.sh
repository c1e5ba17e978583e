#!/bin/sh
# Helpers the guest's /init and scenarios source (busybox sh).
# Results go to the serial console as `VMTEST PASS|FAIL|SKIP|INFO ...` lines,
# which run.sh turns into its exit status, and to /run/vmtest.results.
# shellcheck disable=SC2034 # variables are for the scenarios

# VMTEST_KVER, VMTEST_NATIVE, VMTEST_SCENARIO and --env variables (mkinitrd.sh).
# shellcheck source=/dev/null
[ -f /etc/vmtest.conf ] && . /etc/vmtest.conf

VMTEST_BUS=unix:path=/run/dbus/system_bus_socket
VMTEST_NAME=org.vfioresetd1
export DBUS_SYSTEM_BUS_ADDRESS="$VMTEST_BUS"

vmtest_info() { echo "VMTEST INFO $*"; }
vmtest_pass() {
	echo "VMTEST PASS $1"
	echo "PASS $1" >>/run/vmtest.results
}
# vmtest_fail NAME REASON...
vmtest_fail() {
	_name=$1
	shift
	echo "VMTEST FAIL $_name: $*"
	echo "FAIL $_name" >>/run/vmtest.results
}
vmtest_skip() {
	_name=$1
	shift
	echo "VMTEST SKIP $_name: $*"
	echo "SKIP $_name" >>/run/vmtest.results
}
# vmtest_result NAME REASON: PASS when REASON is empty, else FAIL.
vmtest_result() {
	if [ -z "$2" ]; then vmtest_pass "$1"; else vmtest_fail "$1" "$2"; fi
}
# Print a file to the console, each line prefixed (for logs of failures).
vmtest_dump() {
	[ -f "$2" ] && sed "s|^|VMTEST INFO $1: |" "$2"
}

# The kernel's log from where the scenario began on: guest-init.sh writes
# VMTEST_KMSG_MARK to /dev/kmsg (vmtest_dmesg_mark) just before the scenario,
# so what the boot logged (a busy host's stall warnings) is not the
# scenario's. A scenario may mark again; the last mark counts. All of dmesg
# when the mark has left the ring buffer: everything in it is later then.
VMTEST_KMSG_MARK="vfio-resetd-test: scenario begins"
vmtest_dmesg_mark() { echo "$VMTEST_KMSG_MARK" >/dev/kmsg; }
vmtest_dmesg() {
	dmesg >/run/vmtest.dmesg
	_vd_line=$(grep -n -F -- "$VMTEST_KMSG_MARK" /run/vmtest.dmesg | tail -n 1 | cut -d: -f1)
	tail -n +$((${_vd_line:-0} + 1)) /run/vmtest.dmesg
}

# --- the guest's NICs and its scenario (guest-init.sh, guest-root-run.sh) -----

# The initramfs's modules, in the order mkinitrd.sh derived from modules.dep.
vmtest_load_modules() {
	while read -r _lm_ko; do
		insmod "$_lm_ko" || vmtest_info "init: insmod $_lm_ko failed"
	done <"/lib/modules/$VMTEST_KVER/load-order"
}

# Endpoint NICs (class 0x02xxxx; bridges are 0x0604xx), one a line.
vmtest_nics() {
	for _vn_dev in /sys/bus/pci/devices/*; do
		case $(cat "$_vn_dev/class") in 0x02*) echo "${_vn_dev##*/}" ;; esac
	done
}
vmtest_is_native() {
	case " $VMTEST_NATIVE " in *" $1 "*) return 0 ;; esac
	return 1
}
# Before any NIC driver loads: vfio-pci for every endpoint but the natives,
# so that no native driver grabs them.
vmtest_nics_override() {
	for _vo_bdf in $(vmtest_nics); do
		vmtest_is_native "$_vo_bdf" || echo vfio-pci >"/sys/bus/pci/devices/$_vo_bdf/driver_override"
	done
}
# Once the drivers are loaded: each endpoint on its driver, one line each.
vmtest_nics_bind() {
	# shpchp (bound to the pcie-pci-bridge once ACPI leaves hotplug to the OS)
	# makes that bridge's IOMMU group, and so the e1000s behind it, not viable.
	for _vb_port in /sys/bus/pci/drivers/shpchp/0000:*; do
		[ -e "$_vb_port" ] || continue
		echo "${_vb_port##*/}" >/sys/bus/pci/drivers/shpchp/unbind
		vmtest_info "init: unbound shpchp from ${_vb_port##*/}"
	done
	for _vb_bdf in $(vmtest_nics); do
		_vb_dev=/sys/bus/pci/devices/$_vb_bdf
		if vmtest_is_native "$_vb_bdf"; then
			[ -e "$_vb_dev/driver" ] || echo "$_vb_bdf" >/sys/bus/pci/drivers_probe
		elif [ "$(pci_driver "$_vb_bdf")" != vfio-pci ]; then
			[ -e "$_vb_dev/driver" ] && echo "$_vb_bdf" >"$_vb_dev/driver/unbind"
			echo "$_vb_bdf" >/sys/bus/pci/drivers_probe
		fi
	done
	for _vb_bdf in $(vmtest_nics); do
		vmtest_info "init: $_vb_bdf $(cat "/sys/bus/pci/devices/$_vb_bdf/vendor"):$(cat "/sys/bus/pci/devices/$_vb_bdf/device") driver=$(pci_driver "$_vb_bdf") group=$(pci_group "$_vb_bdf")"
	done
	for _vb_port in /sys/bus/pci_express/drivers/pciehp/*:pcie*; do
		[ -e "$_vb_port" ] && vmtest_info "init: pciehp on ${_vb_port##*/}"
	done
	return 0
}

# vmtest_run_scenario SCRIPT [COMMAND]: run it from a fresh mark of the
# kernel log; when a test failed, the dmesg and what COMMAND prints follow;
# then VMTEST DONE (run.sh waits for it).
vmtest_run_scenario() {
	vmtest_info "init: running scenario $VMTEST_SCENARIO"
	vmtest_dmesg_mark
	sh "$1"
	_rs_rc=$?
	[ "$_rs_rc" -eq 0 ] || vmtest_fail "$VMTEST_SCENARIO" "scenario script exited with status $_rs_rc"
	if grep -q '^FAIL' /run/vmtest.results 2>/dev/null; then
		echo "---- dmesg (a test failed) ----"
		dmesg
		echo "---- end of dmesg ----"
		[ $# -lt 2 ] || $2
	fi
	echo "VMTEST DONE"
	sync
}

# After a failed scenario on the Debian root: the journal of what it runs.
vmtest_root_journal() {
	echo "---- journal of vfio-resetd, libvirtd, polkit, machines (a test failed) ----"
	journalctl -b --no-pager -o short-monotonic -u vfio-resetd.service -u libvirtd.service \
		-u polkit.service -u systemd-machined.service -u 'machine-*.scope'
	echo "---- end of journal ----"
}

pci_driver() {
	if [ -e "/sys/bus/pci/devices/$1/driver" ]; then
		basename "$(readlink "/sys/bus/pci/devices/$1/driver")"
	else
		echo none
	fi
}
pci_group() { basename "$(readlink "/sys/bus/pci/devices/$1/iommu_group")"; }
# Addresses bound to vfio-pci, sorted.
vfio_devices() {
	for d in /sys/bus/pci/drivers/vfio-pci/[0-9a-f]*:*; do
		[ -e "$d" ] && echo "${d##*/}"
	done | sort
}

# 0000:04:00.1 <-> /org/vfioresetd1/device/pci_0000_04_00_1
device_path() { echo "/org/vfioresetd1/device/pci_$(echo "$1" | tr ':.' '__')"; }
path_address() {
	echo "${1##*/pci_}" | sed 's/^\([0-9a-f]*\)_\([0-9a-f]*\)_\([0-9a-f]*\)_\([0-7]\)$/\1:\2:\3.\4/'
}

# busctl's text form, one value per line, quotes dropped:
# `ao 2 "/a" "/b"` -> /a, /b;  `a(sus) 1 "x" 12 "y"` -> x, 12, y.
busctl_values() {
	awk '{
		s = $0; sub(/^[^ ]+ /, "", s)           # the signature
		if ($1 ~ /^a/) sub(/^[0-9]+ ?/, "", s)   # the element count
		while (length(s) > 0) {
			if (substr(s, 1, 1) == "\"") {
				s = substr(s, 2); v = ""
				while (length(s) > 0 && substr(s, 1, 1) != "\"") {
					c = substr(s, 1, 1)
					if (c == "\\") { s = substr(s, 2); c = substr(s, 1, 1) }
					v = v c; s = substr(s, 2)
				}
				s = substr(s, 2); print v
			} else {
				i = index(s, " "); if (i == 0) i = length(s) + 1
				print substr(s, 1, i - 1); s = substr(s, i)
			}
			sub(/^ +/, "", s)
		}
	}'
}
# prop PATH IFACE NAME: the property's values, one a line; fails like busctl.
prop() {
	_out=$(busctl --system get-property "$VMTEST_NAME" "$1" "$2" "$3" 2>&1) || {
		echo "$_out" >&2
		return 1
	}
	echo "$_out" | busctl_values
}

# dev_set_holders DEVSET: its Holders, one "address<TAB>pid<TAB>command" a line.
dev_set_holders() { prop "$1" org.vfioresetd1.DevSet Holders | paste - - -; }
holder_listed() { dev_set_holders "$1" | grep -q "^$2	$3	$4$"; }
# dev_set_holder_details DEVSET: its HolderDetails, one
# "address<TAB>pid<TAB>uid<TAB>command<TAB>unit" a line.
dev_set_holder_details() { prop "$1" org.vfioresetd1.DevSet HolderDetails | paste - - - - -; }
holder_detailed() { dev_set_holder_details "$1" | grep -qxF "$2	$3	$4	$5	$6"; }
# expect_holder_details DEVSET ADDR PID UID COMMAND UNIT: PASS when HolderDetails lists it.
expect_holder_details() {
	if wait_for 20 holder_detailed "$@"; then
		vmtest_pass "holder details name pid $3 uid $4 $5 unit '$6'"
	else
		vmtest_fail "holder details name pid $3 uid $4 $5 unit '$6'" \
			"$1 HolderDetails: $(dev_set_holder_details "$1" 2>&1 | tr '\t\n' ' ;')"
	fi
}

# expect_holder DEVSET ADDR PID COMMAND: PASS when Holders lists it. The
# daemon may notice holders on its own schedule: give it a while.
expect_holder() {
	if wait_for 20 holder_listed "$@"; then
		vmtest_pass "holders names pid $3 $4"
	else
		vmtest_fail "holders names pid $3 $4" "$1 Holders: $(dev_set_holders "$1" 2>&1 | tr '\t\n' ' ;')"
	fi
}

# wait_for SECONDS COMMAND...: poll every 0.2 s until COMMAND succeeds.
wait_for() {
	_tries=$(($1 * 5))
	shift
	while [ "$_tries" -gt 0 ]; do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
		_tries=$((_tries - 1))
	done
	return 1
}

bus_start() {
	mkdir -p /run/dbus
	dbus-daemon --config-file=/etc/dbus-1/vmtest-system.conf --nofork --nopidfile \
		>/run/dbus-daemon.log 2>&1 &
	VMTEST_DBUS_PID=$!
	wait_for 20 busctl --system list || {
		vmtest_dump dbus-daemon /run/dbus-daemon.log
		return 1
	}
}

name_on_bus() { busctl --system list 2>/dev/null | grep -q "^$VMTEST_NAME "; }

# daemon_start [ARGS...]: vfio-resetd on the private bus, logging to
# /run/vfio-resetd.log; waits until it owns its name (TCG is slow).
# Without ARGS it takes VMTEST_DAEMON_ARGS (run.sh --env). VMTEST_DAEMON_WRAP
# (a setpriv command line) runs before it, and must exec it.
daemon_start() {
	# shellcheck disable=SC2086 # options, one a word
	[ $# -gt 0 ] || set -- ${VMTEST_DAEMON_ARGS:-}
	# shellcheck disable=SC2086 # a command line, one word an argument
	${VMTEST_DAEMON_WRAP:-} vfio-resetd "$@" >/run/vfio-resetd.log 2>&1 &
	VMTEST_DAEMON_PID=$!
	if ! wait_for "${VMTEST_DAEMON_WAIT:-60}" name_on_bus; then
		vmtest_dump vfio-resetd /run/vfio-resetd.log
		return 1
	fi
	vmtest_info "vfio-resetd (pid $VMTEST_DAEMON_PID) owns $VMTEST_NAME"
}

# Stop what bus_start/daemon_start started. The daemon must exit with status
# 0 within 10 s of SIGTERM. Its log goes to the console when a test failed.
vmtest_stop() {
	if [ -n "${VMTEST_DAEMON_PID:-}" ]; then
		kill "$VMTEST_DAEMON_PID" 2>/dev/null
		(sleep 10 && kill -9 "$VMTEST_DAEMON_PID") 2>/dev/null &
		_killer=$!
		wait "$VMTEST_DAEMON_PID"
		_status=$?
		kill "$_killer" 2>/dev/null
		case $_status in
		0) vmtest_pass daemon-stop ;;
		137) vmtest_fail daemon-stop "vfio-resetd still ran 10 s after SIGTERM" ;;
		*) vmtest_fail daemon-stop "vfio-resetd exited with status $_status on SIGTERM" ;;
		esac
		VMTEST_DAEMON_PID=""
	fi
	if [ -n "${VMTEST_DBUS_PID:-}" ]; then
		kill "$VMTEST_DBUS_PID" 2>/dev/null
		wait "$VMTEST_DBUS_PID" 2>/dev/null
		VMTEST_DBUS_PID=""
	fi
	if grep -q '^FAIL' /run/vmtest.results 2>/dev/null; then
		vmtest_dump vfio-resetd /run/vfio-resetd.log
	fi
	return 0
}

# The skips every daemon scenario shares: no daemon or client in the image.
need_programs() {
	for _p in "$@"; do
		if ! command -v "$_p" >/dev/null 2>&1; then
			vmtest_skip "$VMTEST_SCENARIO" "$_p is not in the image (run.sh --bin)"
			return 1
		fi
	done
}

# --- the reset scenarios: the daemon owning devices, bar-peer peers ----------

# manage_config FILE QUIESCE_SEC ADDR...: a daemon config that manages ADDRs,
# with [Ownership] Model=$VMTEST_OWNERSHIP (legacy unless a scenario says:
# the scenarios written for groups and containers test them on the 7.3
# kernel too, where auto would pick cdev).
manage_config() {
	_mc_file=$1 _mc_quiesce=$2
	shift 2
	printf '[Manage]\nDevice=%s\n[Reset]\nQuiesceTimeoutSec=%s\n[Ownership]\nModel=%s\n' "$*" "$_mc_quiesce" \
		"${VMTEST_OWNERSHIP:-legacy}" >"$_mc_file"
}

# peer_start NAME ARGS...: bar-peer (tests/vm/bar-peer.c) in the background.
# Its events go to the console, host-stamped, as "VMTEST INFO peer NAME: ..."
# (VMTEST_PEER_PREFIX replaces "VMTEST INFO peer") and to /run/peer-NAME.log;
# the same lines after the guest's CLOCK_MONOTONIC (seconds) to
# /run/peer-NAME.times; its pid to /run/peer-NAME.pid. Waits until it answered every take; fails
# when it took nothing.
# (Each helper's variables carry its own prefix: sh has no local variables.)
peer_start() {
	_ps_peer=$1
	shift
	: >"/run/peer-$_ps_peer.log"
	: >"/run/peer-$_ps_peer.times"
	bar-peer --log "/run/peer-$_ps_peer.log" --times "/run/peer-$_ps_peer.times" --prefix "${VMTEST_PEER_PREFIX:-VMTEST INFO peer} $_ps_peer:" "$@" &
	echo $! >"/run/peer-$_ps_peer.pid"
	peer_wait "$_ps_peer" 30 '^ready ' || return 1
	! peer_has "$_ps_peer" '^ready .* taken=0$'
}
peer_pid() { cat "/run/peer-$1.pid"; }
# peer_has NAME ERE: the peer reported a line matching ERE.
peer_has() { grep -Eq -- "$2" "/run/peer-$1.log"; }
# peer_wait NAME SECONDS ERE: until it does.
peer_wait() { wait_for "$2" peer_has "$1" "$3"; }
# peer_line NAME ERE: its last line matching ERE.
peer_line() { grep -E -- "$2" "/run/peer-$1.log" | tail -n 1; }
peer_count() { grep -Ec -- "$2" "/run/peer-$1.log"; }
# peer_unique NAME: its unique bus name (from its ready line).
peer_unique() { sed -n 's/^ready \([^ ]*\) .*/\1/p' "/run/peer-$1.log" | head -n 1; }
# peer_stop NAME: SIGTERM and reap it (it may be gone already).
peer_stop() { proc_stop "$(peer_pid "$1")"; }
# proc_stop PID: SIGTERM a child of the scenario and reap it.
proc_stop() {
	kill "$1" 2>/dev/null
	wait "$1" 2>/dev/null
	return 0
}

# reset_request NAME ADDR [bar-peer options]: ResetDevice through bar-peer's
# requester mode, in the foreground; its lines in /run/peer-NAME.log (and on
# the console). The status is bar-peer's (0: every call answered "done").
reset_request() {
	_rr_peer=$1 _rr_addr=$2
	shift 2
	: >"/run/peer-$_rr_peer.log"
	: >"/run/peer-$_rr_peer.times"
	bar-peer --reset "$_rr_addr" --log "/run/peer-$_rr_peer.log" --times "/run/peer-$_rr_peer.times" \
		--prefix "${VMTEST_PEER_PREFIX:-VMTEST INFO peer} $_rr_peer:" "$@"
}
# reset_request_bg NAME ADDR [options]: the same in the background (pid file as peer_start).
reset_request_bg() {
	: >"/run/peer-$1.log"
	reset_request "$@" &
	echo $! >"/run/peer-$1.pid"
}

# peer_time NAME ERE: the guest clock (s) of its first line matching ERE.
peer_time() { grep -E -- "^[0-9.]+ ${2#^}" "/run/peer-$1.times" | head -n 1 | cut -d' ' -f1; }
# ms_between T0 T1: T1 - T0 in milliseconds, one decimal.
ms_between() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", (b - a) * 1000 }'; }

# daemon_stop: SIGTERM the daemon daemon_start started and wait for it (the
# bus stays up; daemon_start may start another).
daemon_stop() {
	[ -n "${VMTEST_DAEMON_PID:-}" ] || return 0
	kill "$VMTEST_DAEMON_PID" 2>/dev/null
	wait "$VMTEST_DAEMON_PID" 2>/dev/null
	VMTEST_DAEMON_PID=""
	wait_for 10 sh -c '! busctl --system list 2>/dev/null | grep -q "^org.vfioresetd1 "'
}

# daemon_has ERE: the daemon's log has a line matching ERE.
daemon_has() { grep -Eq -- "$1" /run/vfio-resetd.log; }
daemon_line() { grep -E -- "$1" /run/vfio-resetd.log | tail -n 1; }
# daemon_kernel_times: "n=N min_ms=X median_ms=Y" of the kernel resets the
# daemon logged ("VFIO_DEVICE_PCI_HOT_RESET took X ms"); nothing without any.
daemon_kernel_times() {
	grep -o 'VFIO_DEVICE_PCI_HOT_RESET took [0-9.]* ms' /run/vfio-resetd.log | awk '{ print $3 }' | sort -n |
		awk '{ v[NR] = $1 } END { if (NR) printf "n=%d min_ms=%.1f median_ms=%.1f\n",
			NR, v[1], NR % 2 ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
# daemon_alive: the process runs and answers a bus call.
daemon_alive() {
	kill -0 "$VMTEST_DAEMON_PID" 2>/dev/null &&
		busctl --system call "$VMTEST_NAME" /org/vfioresetd1 org.vfioresetd1.Manager GetDevice s "$1" >/dev/null
}
# daemon_show_resets: the daemon's account of each reset, on the console.
daemon_show_resets() {
	grep -E 'Reset [0-9]+ of|asks for .* back|Peer .* (took|left)' /run/vfio-resetd.log 2>/dev/null |
		sed 's/^/VMTEST INFO vfio-resetd: /'
}

# Start the private bus and the daemon managing ADDR... (config
# /run/vfio-resetd.conf, quiesce deadline 10 s, debug log). On failure it says
# so and stops the guest's programs: the scenario should end.
managed_daemon_start() {
	manage_config /run/vfio-resetd.conf 10 "$@"
	if ! bus_start || ! daemon_start --debug --config /run/vfio-resetd.conf; then
		vmtest_fail daemon-start "vfio-resetd did not own $VMTEST_NAME"
		vmtest_stop
		return 1
	fi
}
# --- the demo: lines for the person watching (run.sh --demo shows them) ------
say() { echo "DEMO $*"; }
# run COMMAND...: the command line, then what it printed.
run() {
	say "\$ $*"
	"$@" 2>&1 | sed 's/^/DEMO /'
}

# check_peer NAME ADDR ID: a bar-peer's whole handshake for reset ID: paused
# for its own function, TDBAL still $written when it acked, resumed "done",
# TDBAL back at 0 through the same mapping, written again, alive.
check_peer() {
	_p=$1 _addr=$2 _id=$3 _why=""
	peer_has "$_p" "^pause $_id pause $_addr\$" || _why="$_why no 'pause $_id pause $_addr' (only its own function);"
	peer_has "$_p" "^before-ack $_addr reg=0x3800 value=$written\$" ||
		_why="$_why TDBAL was not $written when it acked (reset before the pause was acked?);"
	peer_has "$_p" "^acked $_id\$" || _why="$_why did not ack $_id;"
	peer_has "$_p" "^resume $_id done\$" || _why="$_why no 'resume $_id done';"
	peer_has "$_p" "^value $_addr reg=0x3800 mmap=0x00000000 pread=0x00000000 reset=yes\$" ||
		_why="$_why TDBAL not back at 0 after the reset: $(peer_line "$_p" "^value ");"
	[ "$(peer_count "$_p" "^rewrote $_addr reg=0x3800 value=$written readback=$written\$")" -ge 1 ] ||
		_why="$_why could not write TDBAL again after Resume;"
	kill -0 "$(peer_pid "$_p")" 2>/dev/null || _why="$_why the peer died;"
	vmtest_result "peer $_p ($_addr) paused, acked, resumed and saw the reset (reset $_id)" "$_why"
}

# Does the daemon own every member of the set at $set_path?
managed() { [ "$(prop "${set_path:?}" org.vfioresetd1.DevSet Managed)" = true ]; }

# --- the borrow scenarios: holders that never heard of the daemon -------------

# igb_bus_set: the set they work on, the igb pair 04:00.0/04:00.1 (a bus set
# in IOMMU groups 11 and 12, root port with hotplug=off), as $a, $b and
# $set_path, and the TDBAL value the holders and peers write, $written.
igb_bus_set() {
	a=0000:04:00.0 b=0000:04:00.1 written=0x5a5a5a00
	set_path=/org/vfioresetd1/devset/bus_0000_04
}
# kernel_log_why: prints nothing when the kernel logged nothing alarming since
# the scenario began (vmtest_dmesg); else the first such lines.
kernel_log_why() {
	_klw='BUG:|Oops|general protection|segfault|Call Trace|hung_task|WARNING:'
	vmtest_dmesg | grep -Eq "$_klw" && printf ' dmesg: %s;' "$(vmtest_dmesg | grep -E "$_klw" | head -n 3 | tr '\n' ' ')"
	return 0
}

# holder_start NAME ADDR [holder options]: tests/vm/holder.c in the background,
# its lines in /run/holder-NAME.log, its pid in /run/holder-NAME.pid; waits
# until it holds the function and wrote TDBAL. VMTEST_HOLDER_WRAP (e.g. a
# setpriv command line) runs before it, and must exec it.
holder_start() {
	_hs_name=$1
	shift
	: >"/run/holder-$_hs_name.log"
	# shellcheck disable=SC2086 # a command line, one word an argument
	${VMTEST_HOLDER_WRAP:-} holder "$@" >"/run/holder-$_hs_name.log" 2>&1 &
	echo $! >"/run/holder-$_hs_name.pid"
	wait_for 20 holder_has "$_hs_name" ' (wrote|error) ' && ! holder_has "$_hs_name" ' error '
}
holder_pid() { cat "/run/holder-$1.pid"; }
# holder_has NAME ERE: the holder printed a line matching ERE.
holder_has() { grep -Eq -- "$2" "/run/holder-$1.log"; }
holder_count() { grep -Ec -- "$2" "/run/holder-$1.log"; }
holder_line() { grep -E -- "$2" "/run/holder-$1.log" | tail -n 1; }
# holder_state NAME: its state letter in /proc/PID/stat (T: stopped), or
# "gone".
# "gone". No fork: the sampler below calls it often.
holder_state() {
	_hst=""
	read -r _hst_pid <"/run/holder-$1.pid" && read -r _hst <"/proc/$_hst_pid/stat" 2>/dev/null
	_hst=${_hst##*) }
	_hst=${_hst%% *}
	echo "${_hst:-gone}"
}
# proc_running PID: it exists and is not a zombie (kill -0 says yes to an
# unreaped child that ended).
proc_running() {
	_pr=""
	read -r _pr <"/proc/$1/stat" 2>/dev/null
	_pr=${_pr##*) }
	case $_pr in "" | Z* | X*) return 1 ;; esac
}
# holders_sample PID NAME...: while process PID runs, the holders' states
# every 20 ms or so, "NAME:STATE" words (T: stopped).
holders_sample() {
	_hsa_pid=$1
	shift
	while proc_running "$_hsa_pid"; do
		for _hsa in "$@"; do printf '%s:%s ' "$_hsa" "$(holder_state "$_hsa")"; done
		sleep 0.02
	done
	echo
}
# holder_ask NAME SIGNAL WORD: send the signal (USR1: status, USR2: rewrite
# TDBAL) and print the line with WORD it answers with (fails without one).
holder_ask() {
	_ha_n=$(holder_count "$1" " $3 ")
	kill -s "$2" "$(holder_pid "$1")" 2>/dev/null || return 1
	wait_for 10 sh -c "[ \$(grep -Ec -- ' $3 ' /run/holder-$1.log) -gt $_ha_n ]" || return 1
	holder_line "$1" " $3 "
}
# holder_field NAME KEY: KEY's value in the holder's status line now.
holder_field() { holder_ask "$1" USR1 status | sed -n "s/.* $2=\([^ ]*\).*/\1/p"; }
holder_stop() { proc_stop "$(holder_pid "$1")"; }
# holders_dump NAME...: their lines on the console.
holders_dump() {
	for _hd in "$@"; do vmtest_dump "holder $_hd" "/run/holder-$_hd.log"; done
}
# states_seen SAMPLES: how often each NAME:STATE was sampled ("6 A:S 2 A:T").
states_seen() { echo "$1" | tr -s ' ' '\n' | grep . | sort | uniq -c | tr -s ' \n' ' '; }
# holder_resets NAME: how often it saw TDBAL drop to 0; holder_conts NAME:
# how many SIGCONTs it got (each one ended a stop).
holder_resets() { holder_count "$1" ' TDBAL 0x[0-9a-f]* -> 0x00000000$'; }
holder_conts() { holder_count "$1" ' continued '; }
# holder_saw_reset NAME RESETS CONTS: prints nothing when, within 5 s, it
# saw more resets than RESETS and more SIGCONTs than CONTS; else why not.
holder_saw_reset() {
	wait_for 5 sh -c "[ \$(grep -c ' TDBAL 0x[0-9a-f]* -> 0x00000000\$' /run/holder-$1.log) -gt $2 ]" ||
		printf ' holder %s did not see TDBAL go to 0: %s;' "$1" "$(holder_line "$1" ' TDBAL ')"
	wait_for 5 sh -c "[ \$(grep -c ' continued ' /run/holder-$1.log) -gt $3 ]" ||
		printf ' holder %s was never continued (not stopped?);' "$1"
}
# holder_runs NAME [VALUE]: prints nothing when it is alive, not stopped, and
# answers SIGUSR1 (reading TDBAL = VALUE, if given); else why not.
holder_runs() {
	case $(holder_state "$1") in
	T | t | gone | Z)
		printf ' holder %s is %s;' "$1" "$(holder_state "$1")"
		return 0
		;;
	esac
	_hru=$(holder_ask "$1" USR1 status) || { printf ' holder %s does not answer SIGUSR1;' "$1"; return 0; }
	case $_hru in *" status alive value=${2:-0x}"*) ;; *) printf ' holder %s: %s;' "$1" "$_hru" ;; esac
}
# holder_rewrites NAME: prints nothing when SIGUSR2 makes it write TDBAL and
# read back what it wrote (its mapping still works); else why not.
holder_rewrites() {
	_hrw=$(holder_ask "$1" USR2 rewrote)
	echo "$_hrw" | grep -q ' rewrote TDBAL \(0x[0-9a-f]*\) readback=\1$' ||
		printf ' holder %s cannot write TDBAL: %s;' "$1" "$_hrw"
}
# reset_sampled HOLDERS NAME ADDR [bar-peer options]: reset_request in the
# background while sampling the states of HOLDERS ("A B"); sets reset_status
# (bar-peer's) and reset_samples (holders_sample's words).
reset_sampled() {
	_rsd_holders=$1
	shift
	reset_request_bg "$@"
	# shellcheck disable=SC2086 # names, one a word
	reset_samples=$(holders_sample "$(peer_pid "$1")" $_rsd_holders)
	wait "$(peer_pid "$1")"
	reset_status=$?
}
# reset_done_why NAME SET_PATH: prints nothing when requester NAME's last
# call answered "done" for SET_PATH; else its reply.
reset_done_why() {
	case $(peer_line "$1" '^reset-') in
	"reset-reply $2 done "*) ;;
	*) printf ' reply: %s;' "$(peer_line "$1" '^reset-')" ;;
	esac
}
# daemon_fds: how many fds the daemon holds now.
daemon_fds() { ls "/proc/$VMTEST_DAEMON_PID/fd" | wc -l; }
# expect_daemon_fds N TEST: PASS when it holds N again within 5 s.
expect_daemon_fds() {
	if wait_for 5 sh -c "[ \$(ls /proc/$VMTEST_DAEMON_PID/fd | wc -l) -eq $1 ]"; then
		vmtest_pass "$2"
	else
		vmtest_fail "$2" "$(daemon_fds) fds, not $1: $(ls -l "/proc/$VMTEST_DAEMON_PID/fd" | sed 's/.* -> //' |
			sort | uniq -c | tr -s ' \n' ' ')"
	fi
}

# --- the Debian root: libvirt domains and the hook --------------------------

# hooks_install LOG: in a scenario's prepare step (before libvirtd reads
# /etc/libvirt/hooks/qemu.d/): a hook that writes each call to LOG
# (NAME OPERATION SUB-OPERATION EXTRA), and vfio-resetd's own hook linked in
# from the prefix this tree was installed in (the unit's ExecStart names it).
hooks_install() {
	mkdir -p /etc/libvirt/hooks/qemu.d
	printf '#!/bin/sh\necho "$*" >>%s\n' "$1" >/etc/libvirt/hooks/qemu.d/vmtest-log
	chmod 755 /etc/libvirt/hooks/qemu.d/vmtest-log
	_hi=$(sed -n 's/^ExecStart=//p' /etc/systemd/system/vfio-resetd.service \
		/lib/systemd/system/vfio-resetd.service /usr/lib/systemd/system/vfio-resetd.service 2>/dev/null | head -n 1)
	_hi=${_hi%% *}	# the program, without its arguments
	ln -sf "${_hi%/sbin/vfio-resetd}/libexec/vfio-resetd-libvirt-hook" /etc/libvirt/hooks/qemu.d/vfio-resetd
}
# service_start: `systemctl enable --now vfio-resetd` as a user runs it; its
# output in /run/enable.out, status in $service_rc; returns once the unit's
# MainPID owns the bus name (busctl lists an activatable name with pid "-"
# until someone owns it).
service_owner() { busctl --system list --no-legend 2>/dev/null | awk -v n="$VMTEST_NAME" '$1 == n && $2 != "-" { print $2 }'; }
service_owned() { [ -n "$(service_owner)" ]; }
service_start() {
	systemctl enable --now vfio-resetd.service >/run/enable.out 2>&1
	service_rc=$?
	wait_for 30 service_owned
}
# --- the Debian root: vfio-resetd.service across restarts (its fd store) ----

VMTEST_UNIT=vfio-resetd.service
# show WHAT: lines on stdin as INFO lines.
show() { sed "s|^|VMTEST INFO $1: |"; }
main_pid() { systemctl show -p MainPID --value "$VMTEST_UNIT"; }
unit_prop() { systemctl show -p "$1" --value "$VMTEST_UNIT"; }
# journal_of PID: the journal of one daemon process.
journal_of() { journalctl --no-pager -b -o cat "_PID=$1"; }
served_by() { [ "$(service_owner)" = "$1" ] && [ "$(main_pid)" = "$1" ]; }
# wait_new_daemon OLD: serving, and not process OLD: prints the pid that owns
# the name now.
wait_new_daemon() {
	_old=$1
	wait_for 60 sh -c "p=\$(systemctl show -p MainPID --value $VMTEST_UNIT); [ \"\$p\" != 0 ] && [ \"\$p\" != $_old ] &&
		busctl --system list --no-legend | awk -v p=\"\$p\" '\$1 == \"$VMTEST_NAME\" && \$2 == p { f = 1 } END { exit !f }'" &&
		main_pid
}
# service_manage QUIESCE_SEC ADDR...: the service started on a config file
# that manages ADDRs (manage_config, at the path the daemon reads by
# default; VMTEST_OWNERSHIP its model), until $set_path is Managed. Sets
# $service_conf, and $service_why: empty when it serves and manages the set.
service_manage() {
	service_conf=$(vfio-resetd --help | sed -n 's/.*Read PATH instead of //p')
	mkdir -p "${service_conf%/*}"
	manage_config "$service_conf" "$@"
	systemctl start "$VMTEST_UNIT" >/run/start.out 2>&1
	_sm_rc=$?
	wait_for 60 managed
	service_why=""
	[ "$_sm_rc" -eq 0 ] || service_why="$service_why systemctl start: $(cat /run/start.out);"
	served_by "$(main_pid)" || service_why="$service_why MainPID $(main_pid), the name's owner '$(service_owner)';"
	managed || service_why="$service_why $set_path is not Managed;"
}
# service_killed OLD JOURNAL: `systemctl kill -s KILL` of process OLD, until
# a new one serves and $set_path is Managed (Restart= brings it back): its pid
# in $service_pid, its NRestarts in $service_restarts, its journal in file
# JOURNAL; $service_why empty when a new process owns the name.
service_killed() {
	systemctl kill -s KILL "$VMTEST_UNIT"
	service_pid=$(wait_new_daemon "$1")
	wait_for 30 managed
	service_restarts=$(unit_prop NRestarts)
	journal_of "${service_pid:-0}" >"$2"
	service_why=""
	[ -n "$service_pid" ] || service_why=" no new daemon owns $VMTEST_NAME (MainPID $(main_pid));"
}
# set_peers_are N: the set at $set_path has N peers.
set_peers_are() {
	[ "$(busctl --system get-property "$VMTEST_NAME" "$set_path" org.vfioresetd1.DevSet Peers | cut -d' ' -f2)" = "$1" ]
}
# domain_xml NAME BDF: a 64 MiB domain without disk or USB holding BDF as a
# managed='no' hostdev (the function stays on vfio-pci).
domain_xml() {
	cat <<XML
<domain type='qemu'>
  <name>$1</name>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <devices>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
    <hostdev mode='subsystem' type='pci' managed='no'>
      <source><address domain='0x${2%%:*}' bus='0x$(echo "$2" | cut -d: -f2)' slot='0x$(echo "$2" | cut -d: -f3 | cut -d. -f1)' function='0x${2##*.}'/></source>
    </hostdev>
  </devices>
</domain>
XML
}
qemu_pid() { cat "/run/libvirt/qemu/$1.pid" 2>/dev/null; }
# fd_targets PID: what each fd of PID is open on, one a line.
fd_targets() {
	for _fd in "/proc/$1/fd/"*; do
		readlink "$_fd"
	done 2>/dev/null
}
# holds_group PID GROUP: its fds include /dev/vfio/GROUP and a vfio device.
holds_group() {
	fd_targets "$1" | grep -qx "/dev/vfio/$2" && fd_targets "$1" | grep -qxF 'anon_inode:[vfio-device]'
}
# pid_unit PID: the innermost systemd unit of its cgroup path (libvirt puts
# QEMU in .../machine-qemu\x2d1\x2dvm1.scope/libvirt/emulator).
pid_unit() { awk -F/ '/^0::/ { for (i = NF; i > 1; i--) if ($i ~ /\.(scope|service)$/) { print $i; exit } }' "/proc/$1/cgroup"; }
# pid_state PID: its state letter (R, S, T: stopped...): the root has no ps.
pid_state() { awk '$1 == "State:" { print $2 }' "/proc/$1/status" 2>/dev/null; }
# domain_start NAME BDF: virsh define and start; returns once its QEMU holds
# BDF's group. Else $domain_why says why (and libvirt's log of it is shown).
domain_start() {
	domain_why=""
	domain_xml "$1" "$2" >"/run/$1.xml"
	virsh -q define "/run/$1.xml" >"/run/$1.define" 2>&1 || domain_why="define: $(cat "/run/$1.define");"
	[ -n "$domain_why" ] || virsh -q start "$1" >"/run/$1.start" 2>&1 || domain_why="start: $(cat "/run/$1.start");"
	[ -n "$domain_why" ] || [ "$(virsh domstate "$1" 2>&1)" = running ] || domain_why="domstate '$(virsh domstate "$1" 2>&1)';"
	[ -n "$domain_why" ] || wait_for 10 holds_group "$(qemu_pid "$1")" "$(pci_group "$2")" ||
		domain_why="QEMU pid '$(qemu_pid "$1")' does not hold /dev/vfio/$(pci_group "$2") and a vfio device: $(fd_targets "$(qemu_pid "$1")" | grep vfio | tr '\n' ' ');"
	[ -z "$domain_why" ] && return 0
	tail -n 20 "/var/log/libvirt/qemu/$1.log" 2>/dev/null | sed "s|^|VMTEST INFO $1.log: |"
	return 1
}
# domain_alive NAME PID: prints why not, when the domain is not running or its
# QEMU (PID) is gone, changed or stopped.
domain_alive() {
	_da=$(virsh domstate "$1" 2>&1)
	[ "$_da" = running ] || printf ' %s is %s;' "$1" "'$_da'"
	kill -0 "$2" 2>/dev/null || printf ' QEMU %s of %s is gone;' "$2" "$1"
	[ "$(qemu_pid "$1")" = "$2" ] || printf " %s's QEMU is now '%s';" "$1" "$(qemu_pid "$1")"
	case $(pid_state "$2") in T | t) printf ' QEMU %s is stopped;' "$2" ;; esac
	return 0
}
# journal_dones SET: how many resets of SET the daemon's journal says ended done.
journal_dones() { journalctl --no-pager -u vfio-resetd.service 2>/dev/null | grep -c "of $1: done after"; }
# journal_done_wait SET N: until more than N resets of SET ended done (60 s).
journal_done_wait() { wait_for 60 sh -c "[ \$(journalctl --no-pager -u vfio-resetd.service | grep -c 'of $1: done after') -gt $2 ]"; }

# A guest's function without a reset of its own, as a GPU may be: with its
# function resets off in sysfs (`reset_method` empty), vfio-pci resets it
# neither when it is opened nor when it is let go, so what a user leaves in
# its registers stays for the next one until the whole set is reset.
# function_resets_off ADDR / function_resets_default ADDR.
function_resets_off() { echo "" >"/sys/bus/pci/devices/$1/reset_method" && [ -z "$(cat "/sys/bus/pci/devices/$1/reset_method")" ]; }
function_resets_default() { echo default >"/sys/bus/pci/devices/$1/reset_method"; }
# stand_in ADDR: a stand-in for a guest (holder) opens ADDR as QEMU does,
# writes TDBAL and goes, as a stopped guest's QEMU goes; prints
# "wrote V, read back R".
stand_in() {
	holder --quiet "$1" >/run/stand-in.out 2>&1 &
	_si=$!
	wait_for 10 grep -q ' wrote TDBAL ' /run/stand-in.out
	kill "$_si"
	wait "$_si" 2>/dev/null
	sed -n 's/.* wrote TDBAL \(0x[0-9a-f]*\) readback=\(0x[0-9a-f]*\)$/wrote \1, read back \2/p' /run/stand-in.out
}
# next_user ADDR: what the next user of ADDR reads in TDBAL (holder --peek).
next_user() { holder --peek "$1" 2>&1 | sed -n 's/.* peeked TDBAL //p'; }
