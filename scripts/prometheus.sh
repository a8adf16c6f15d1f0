#!/usr/bin/env bash
# prometheus.sh: Prometheus and promtool from Debian's packages, in a private
# folder, for the rules' checks and the e2e that runs a real Prometheus
# against real agents. It changes nothing on the system: a private apt setup
# (its own sources, lists, cache and an empty dpkg status) downloads the
# release's prometheus package (and its promtool package, split out since
# Debian 13) and dpkg-deb -x unpacks them into one root. Debian builds both
# binaries with cgo: they link the C library and nothing else, and the
# system's runs them (Debian 13's need glibc 2.34, Debian 12 has 2.36). The
# fetch checks that they run and load no other library.
#
# Usage:
#   scripts/prometheus.sh [fetch] [RELEASE]   fetch it unless already there (default: trixie)
#   scripts/prometheus.sh bin [RELEASE]       print the folder holding prometheus and promtool, for HAFEED_PROMETHEUS
#
# Cache: $HAFEED_PROMETHEUS_CACHE, default ${XDG_CACHE_HOME:-~/.cache}/hafeed/prometheus.
# One folder per package version (2.53.3+ds1-2/root/usr/bin), and RELEASE a
# link to the one in use. A release already fetched is not looked up again:
# a second run does nothing. REFRESH=1 looks for a newer version.
# The Debian mirror is scripts/haproxy-versions.sh's: the one the system's
# apt sources use, or HAFEED_DEBIAN_MIRROR.
set -euo pipefail

cache=${HAFEED_PROMETHEUS_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hafeed/prometheus}
default_release=trixie
here=$(cd "$(dirname "$0")" && pwd)

say() { echo "prometheus: $*" >&2; }
die() {
	say "$*"
	exit 1
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
	uri=$("$here/haproxy-versions.sh" mirror) || exit 1
	keyring=/usr/share/keyrings/debian-archive-keyring.gpg
	[ -f "$keyring" ] || die "$keyring is missing: apt-get install debian-archive-keyring"
	echo "deb [signed-by=$keyring] $uri $release main" >"$d/sources.list"
	say "$release: apt-get update from $uri (private lists under $d)"
	aptp "$release" apt-get -q update >&2 || die "$release: apt-get update failed (see above)"
}

# check prints what is wrong with the binaries in DIR, if anything: both
# must link no library but the C library, and run on this system.
check() {
	local dir=${1%/} b libs
	for b in prometheus promtool; do
		[ -x "$dir/$b" ] || { echo "$dir/$b is missing" && return 1; }
		libs=$(LC_ALL=C readelf -d "$dir/$b" 2>/dev/null | awk '/\(NEEDED\)/ && $NF != "[libc.so.6]" {print $NF}')
		[ -z "$libs" ] || { echo "$dir/$b links $libs, which the system may not have" && return 1; }
		"$dir/$b" --version >/dev/null 2>&1 || { echo "$dir/$b does not run (a C library older than it needs?): try $dir/$b --version" && return 1; }
	done
}

# fetch makes $cache/RELEASE point at that release's prometheus package.
fetch() {
	local release=$1 link=$cache/$1
	if [ -z "${REFRESH:-}" ] && check "$link/root/usr/bin" >/dev/null; then
		return
	fi
	setup_apt "$release"
	local version
	version=$(aptp "$release" apt-cache show --no-all-versions prometheus | awk '/^Version:/ {print $2; exit}')
	[ -n "$version" ] || die "$release: no prometheus package in its lists"
	local dir=$cache/$version
	rm -rf "$cache"/.fetch-* # left by an interrupted run
	if ! check "$dir/root/usr/bin" >/dev/null; then
		say "$release: prometheus $version into $dir"
		local tmp deb
		tmp=$(mktemp -d "$cache/.fetch-XXXXXX")
		local pkgs=(prometheus)
		if aptp "$release" apt-cache show promtool >/dev/null 2>&1; then
			pkgs+=(promtool)
		fi
		(cd "$tmp" && aptp "$release" apt-get -q download "${pkgs[@]}" >&2) ||
			die "$release: apt-get download ${pkgs[*]} failed (see above)"
		mkdir -p "$tmp/root"
		for deb in "$tmp"/*.deb; do
			dpkg-deb -x "$deb" "$tmp/root"
		done
		rm -f "$tmp"/*.deb
		rm -rf "$dir" && mkdir -p "$dir"
		mv "$tmp/root" "$dir/root"
		rmdir "$tmp"
		local problem
		problem=$(check "$dir/root/usr/bin") || die "$release: $problem"
	fi
	ln -sfn "$version" "$link"
	rm -rf "${cache:?}/apt/$release" # REFRESH=1 downloads fresh lists anyway
	say "$release: $("$link/root/usr/bin/prometheus" --version 2>&1 | head -1)"
}

bin() {
	local dir=$cache/$1/root/usr/bin
	[ -x "$dir/promtool" ] || die "$1: not fetched: run scripts/prometheus.sh fetch $1 (make deps-prometheus)"
	echo "$dir"
}

cmd=fetch
case "${1:-}" in
fetch | bin) cmd=$1 && shift ;;
-h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//' && exit 0 ;;
-*) die "unknown option $1: see $0 --help" ;;
esac
[ $# -le 1 ] || die "one release at most: see $0 --help"
release=${1:-$default_release}
mkdir -p "$cache"
case $cmd in
fetch) fetch "$release" ;;
bin) bin "$release" ;;
esac
