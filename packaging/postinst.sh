#!/bin/sh
# postinst of the hafeed Debian package (nfpm: packaging/nfpm.yaml).
# Creates the system user and group hafeed, puts the user in group haproxy
# when it exists (HAProxy's runtime socket), then enables and (re)starts
# hafeed.service as debhelper's dh_installsystemd would.
set -e

if [ "$1" = "configure" ]; then
	if ! getent group hafeed >/dev/null; then
		addgroup --quiet --system hafeed
	fi
	if ! getent passwd hafeed >/dev/null; then
		adduser --quiet --system --ingroup hafeed --no-create-home \
			--home /var/lib/hafeed --shell /usr/sbin/nologin \
			--gecos "hafeed load feedback agent" hafeed
	fi
	# HAProxy's runtime socket (/run/haproxy/admin.sock) is usually mode 0660
	# group haproxy. Installing haproxy later? Run: adduser hafeed haproxy
	if getent group haproxy >/dev/null && \
		! id -nG hafeed | tr ' ' '\n' | grep -qx haproxy; then
		adduser --quiet hafeed haproxy
	fi
fi

# What dh_installsystemd generates (debhelper 13), for hafeed.service.
if [ "$1" = "configure" ] || [ "$1" = "abort-upgrade" ] || [ "$1" = "abort-deconfigure" ] || [ "$1" = "abort-remove" ]; then
	if [ -x /usr/bin/deb-systemd-helper ]; then
		# Only removes a mask that postrm set on removal.
		deb-systemd-helper unmask 'hafeed.service' >/dev/null || true
		# was-enabled defaults to true, so new installations run enable; an
		# administrator's "systemctl disable hafeed" is kept on upgrades.
		if deb-systemd-helper --quiet was-enabled 'hafeed.service'; then
			deb-systemd-helper enable 'hafeed.service' >/dev/null || true
		else
			deb-systemd-helper update-state 'hafeed.service' >/dev/null || true
		fi
	fi
	if [ -d /run/systemd/system ]; then
		systemctl --system daemon-reload >/dev/null || true
		# A restart keeps the admin state (drain, maint): it is saved in
		# /var/lib/hafeed/state.json and loaded before the port opens.
		if [ -n "$2" ]; then
			_action=restart
		else
			_action=start
		fi
		deb-systemd-invoke $_action 'hafeed.service' >/dev/null || true
	fi
fi

exit 0
