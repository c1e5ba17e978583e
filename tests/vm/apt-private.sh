# SPDX-License-Identifier: LGPL-2.1-or-later
# Sourced by fetch.sh and build-kernel.sh: apt-get and apt-cache on a
# private configuration in $apt_dir (sources.list, lists, cache), so that
# packages of another suite are fetched without touching the system's apt
# state; and the mirror URI the system already uses for bookworm (never
# written down here): from the deb822 .sources files, else from a one-line
# sources.list.

mirror_uri() {
	local f
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] || continue
		awk '
			/^[[:space:]]*$/ { if (uri != "" && bw) print uri; uri = ""; bw = 0; next }
			$1 == "URIs:" { uri = $2 }
			$1 == "Suites:" { for (i = 2; i <= NF; i++) if ($i == "bookworm") bw = 1 }
			END { if (uri != "" && bw) print uri }
		' "$f"
	done 2>/dev/null
	# deb [options] URI SUITE COMPONENT...
	cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '
		$1 == "deb" { i = 2; if ($i ~ /^\[/) while (i <= NF && $i !~ /\]$/) i++; if ($i ~ /\]$/) i++
			if ($(i + 1) == "bookworm") print $i }'
}

apt_private() {
	apt-get -o Dir::Etc::SourceList="$apt_dir/sources.list" \
		-o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State::Lists="$apt_dir/lists" \
		-o Dir::Cache="$apt_dir/cache" \
		-o Dir::State::status=/dev/null \
		-o APT::Sandbox::User=root \
		-o Debug::NoLocking=1 "$@"
}

apt_cache_private() {
	apt-cache -o Dir::Etc::SourceList="$apt_dir/sources.list" \
		-o Dir::Etc::SourceParts=/dev/null \
		-o Dir::State::Lists="$apt_dir/lists" \
		-o Dir::Cache="$apt_dir/cache" \
		-o Dir::State::status=/dev/null "$@"
}
