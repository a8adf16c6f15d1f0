#!/usr/bin/env bash
# haproxy-versions.sh: newer HAProxy lines for the e2e matrix, from Debian's
# packages, in a private folder. It changes nothing on the system: a private
# apt setup (its own sources, lists, cache and an empty dpkg status) downloads
# haproxy and the libraries it links from a Debian release, dpkg-deb -x
# unpacks them into one root, and patchelf points the haproxy binary at that
# root's loader and libraries, so it runs directly, re-exec included
# (shared/HAPROXY.md, "Newer HAProxy lines").
#
# Usage:
#   scripts/haproxy-versions.sh [fetch] [RELEASE...]   fetch what is missing (default: trixie sid)
#   scripts/haproxy-versions.sh bins [RELEASE...]      print the binaries, ':'-separated, for HAFEED_HAPROXY_BINS
#   scripts/haproxy-versions.sh mirror                 print the Debian mirror the fetch uses (scripts/prometheus.sh reads it)
#
# Cache: $HAFEED_HAPROXY_CACHE, default ${XDG_CACHE_HOME:-~/.cache}/hafeed/haproxy.
# One folder per package version (3.0.11-1+deb13u1/haproxy), and RELEASE a
# link to the one in use. A release already fetched is not looked up again:
# a second run does nothing. REFRESH=1 looks for a newer version.
# The Debian mirror is the one the system's apt sources use for its own
# release; HAFEED_DEBIAN_MIRROR overrides it.
set -euo pipefail

cache=${HAFEED_HAPROXY_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hafeed/haproxy}
default_releases=(trixie sid)
# What haproxy links, and what those link in turn. After patching, the
# release's loader lists what it would load: anything from outside the
# private root (a library missing here) is an error.
libs=(libc6 libcrypt1 libjemalloc2 liblua5.4-0 libopentracing-c-wrapper0t64 libopentracing1
	libpcre2-8-0 libssl3t64 libstdc++6 libgcc-s1 libzstd1 zlib1g)

say() { echo "haproxy-versions: $*" >&2; }
die() {
	say "$*"
	exit 1
}

# mirror prints the Debian archive URI the system's apt uses for its own
# release, from /etc/apt/sources.list and sources.list.d (both formats).
mirror() {
	if [ -n "${HAFEED_DEBIAN_MIRROR:-}" ]; then
		echo "$HAFEED_DEBIAN_MIRROR"
		return
	fi
	local codename
	codename=$(. /etc/os-release && echo "${VERSION_CODENAME:-}")
	local files=()
	[ -f /etc/apt/sources.list ] && files+=(/etc/apt/sources.list)
	for f in /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
		[ -f "$f" ] && files+=("$f")
	done
	[ ${#files[@]} -gt 0 ] || die "no apt sources in /etc/apt: set HAFEED_DEBIAN_MIRROR to a Debian mirror (http://HOST/debian)"
	local uri
	uri=$(awk -v codename="$codename" '
		# One-line format: deb [options] URI SUITE COMPONENT...
		FILENAME ~ /\.list$/ && $1 == "deb" {
			i = 2
			if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
			if ($(i + 1) == codename) { print $i; exit }
			next
		}
		FNR == 1 { check() }
		# deb822: stanzas of "Field: value" separated by blank lines.
		FILENAME ~ /\.sources$/ {
			if ($0 ~ /^[ \t]*$/) { check(); next }
			if ($0 ~ /^#/) next
			key = tolower($1); sub(/:$/, "", key)
			$1 = ""; val = substr($0, 2)
			f[key] = val
		}
		function check(   n, s, k, u) {
			if (f["types"] ~ /(^| )deb( |$)/ && tolower(f["enabled"]) != "no") {
				n = split(f["suites"], s, " ")
				for (k = 1; k <= n; k++) if (s[k] == codename) { split(f["uris"], u, " "); print u[1]; found = 1; exit }
			}
			delete f
		}
		END { if (!found) check() }
	' "${files[@]}")
	[ -n "$uri" ] || die "no Debian mirror for $codename in /etc/apt/sources.list*: set HAFEED_DEBIAN_MIRROR to one (http://HOST/debian)"
	echo "${uri%/}"
}

# aptp runs apt-get or apt-cache with the private setup of a release: its
# sources, lists, cache and dpkg status live under $cache/apt/RELEASE.
aptp() {
	local release=$1 tool=$2
	shift 2
	local d=$cache/apt/$release
	local opts=(-o "Dir::Etc::SourceList=$d/sources.list" -o Dir::Etc::SourceParts=/dev/null
		-o "Dir::State::Lists=$d/lists" -o "Dir::Cache=$d/cache" -o "Dir::State::status=$d/status"
		-o Dir::Etc::Preferences=/dev/null -o Dir::Etc::PreferencesParts=/dev/null
		-o Acquire::Languages=none -o Acquire::IndexTargets::deb::DEP-11::DefaultEnabled=false
		-o "APT::Architectures=$(dpkg --print-architecture)" -o Debug::NoLocking=true)
	if [ "$(id -u)" = 0 ]; then
		# apt downloads as the user _apt, which cannot write to a private folder.
		opts+=(-o APT::Sandbox::User=root)
	fi
	"$tool" "${opts[@]}" "$@"
}

setup_apt() {
	local release=$1 d=$cache/apt/$1 uri keyring
	mkdir -p "$d/lists/partial" "$d/cache/archives/partial"
	: >"$d/status"
	uri=$(mirror)
	keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	[ -f "$keyring" ] || die "$keyring is missing: apt-get install debian-archive-keyring"
	echo "deb [signed-by=$keyring] $uri $release main" >"$d/sources.list"
	say "$release: apt-get update from $uri (private lists under $d)"
	aptp "$release" apt-get -q update >&2 || die "$release: apt-get update failed (see above)"
}

# patchelf_cmd prints how to run patchelf: the release's own, unpacked from
# its package and run by that release's loader, so that the system needs
# no patchelf (a build tool) and none is installed.
patchelf_cmd() {
	local release=$1 root=$2 tools=$cache/tools/$1
	if [ ! -x "$tools/usr/bin/patchelf" ]; then
		local dl
		dl=$(mktemp -d "$cache/.patchelf-XXXXXX")
		(cd "$dl" && aptp "$release" apt-get -q download patchelf >&2) || die "$release: downloading patchelf failed"
		rm -rf "$tools" && mkdir -p "$tools"
		dpkg-deb -x "$dl"/patchelf_*.deb "$tools"
		rm -rf "$dl"
	fi
	echo "$root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 --library-path $root/usr/lib/x86_64-linux-gnu $tools/usr/bin/patchelf"
}

# check prints what is wrong with the patched binary in DIR, if anything:
# it must run, and its loader must take every library from DIR/root (one
# missing there would come from the system's).
check() {
	local dir=${1%/} bin=${1%/}/haproxy
	[ -x "$bin" ] || { echo "$bin is missing" && return 1; }
	local root loader outside
	root=$(cd "$dir/root" 2>/dev/null && pwd -P) || { echo "$dir/root is missing" && return 1; }
	loader=$root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2
	outside=$("$loader" --list "$bin" 2>&1 | awk -v root="$root/" '/=>/ && index($3, root) != 1 {print $1 " => " $3}') ||
		{ echo "$loader --list $bin failed" && return 1; }
	if [ -n "$outside" ]; then
		echo "$bin would load libraries from outside $root: $outside; add their packages to libs in $0"
		return 1
	fi
	"$bin" -vv >/dev/null 2>&1 || { echo "$bin does not run: try $bin -vv" && return 1; }
}

# fetch makes $cache/RELEASE point at a working haproxy of that release.
fetch() {
	local release=$1 link=$cache/$1
	if [ -z "${REFRESH:-}" ] && check "$link/" >/dev/null; then
		return
	fi
	[ "$(dpkg --print-architecture)" = amd64 ] || die "only amd64 is supported (the loader path is x86-64's)"
	setup_apt "$release"
	local version
	version=$(aptp "$release" apt-cache show --no-all-versions haproxy | awk '/^Version:/ {print $2; exit}')
	[ -n "$version" ] || die "$release: no haproxy package in its lists"
	local dir=$cache/$version
	rm -rf "$cache"/.fetch-* "$cache"/.patchelf-* # left by an interrupted run
	if ! check "$dir" >/dev/null; then
		say "$release: haproxy $version into $dir"
		local tmp
		tmp=$(mktemp -d "$cache/.fetch-XXXXXX")
		(cd "$tmp" && aptp "$release" apt-get -q download haproxy "${libs[@]}" >&2) ||
			die "$release: apt-get download failed (see above); a library may have been renamed: adjust libs in $0"
		mkdir -p "$tmp/root"
		for deb in "$tmp"/*.deb; do
			dpkg-deb -x "$deb" "$tmp/root"
		done
		rm -f "$tmp"/*.deb
		local root=$dir/root
		rm -rf "$dir" && mkdir -p "$dir"
		mv "$tmp/root" "$root"
		rmdir "$tmp"
		cp "$root/usr/sbin/haproxy" "$dir/haproxy"
		local pe
		pe=$(patchelf_cmd "$release" "$root")
		# --force-rpath: a RUNPATH would not reach the libraries' own dependencies.
		$pe --force-rpath --set-interpreter "$root/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2" \
			--set-rpath "$root/usr/lib/x86_64-linux-gnu:$root/lib/x86_64-linux-gnu" "$dir/haproxy"
		local problem
		problem=$(check "$dir") || die "$release: $problem"
	fi
	ln -sfn "$version" "$link"
	rm -rf "${cache:?}/apt/$release" # REFRESH=1 downloads fresh lists anyway
	say "$release: $("$link/haproxy" -v | head -1)"
}

bins() {
	local out=() r
	for r in "$@"; do
		[ -x "$cache/$r/haproxy" ] || die "$r: not fetched: run scripts/haproxy-versions.sh fetch $r (make deps-haproxy-matrix)"
		out+=("$cache/$r/haproxy")
	done
	(IFS=:; echo "${out[*]}")
}

cmd=fetch
case "${1:-}" in
fetch | bins) cmd=$1 && shift ;;
mirror) mirror && exit 0 ;;
-h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' && exit 0 ;;
-*) die "unknown option $1: see $0 --help" ;;
esac
[ $# -gt 0 ] || set -- "${default_releases[@]}"
mkdir -p "$cache"
case $cmd in
fetch) for r in "$@"; do fetch "$r"; done ;;
bins) bins "$@" ;;
esac
