#!/bin/sh
# postrm of the hafeed Debian package (nfpm: packaging/nfpm.yaml).
# remove: the unit's symlinks stay masked as dh_installsystemd does, the
#         config and the system user stay (the package is in state "rc").
# purge:  everything goes: symlinks, /etc/hafeed (dpkg), the state in
#         /var/lib/hafeed, /run/hafeed, and the user and group hafeed (the
#         group only if no operator is still a member of it).
set -e

if [ -d /run/systemd/system ]; then
	systemctl --system daemon-reload >/dev/null || true
fi

if [ "$1" = "remove" ] && [ -x /usr/bin/deb-systemd-helper ]; then
	deb-systemd-helper mask 'hafeed.service' >/dev/null || true
fi

if [ "$1" = "purge" ]; then
	if [ -x /usr/bin/deb-systemd-helper ]; then
		deb-systemd-helper purge 'hafeed.service' >/dev/null || true
		deb-systemd-helper unmask 'hafeed.service' >/dev/null || true
	fi
	rm -rf /var/lib/hafeed /run/hafeed
	if getent passwd hafeed >/dev/null; then
		deluser --quiet --system hafeed >/dev/null || true
	fi
	if getent group hafeed >/dev/null && [ -z "$(getent group hafeed | cut -d: -f4)" ]; then
		delgroup --quiet --system --only-if-empty hafeed >/dev/null || true
	fi
fi

exit 0
