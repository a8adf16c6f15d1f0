#!/bin/sh
# prerm of the hafeed Debian package (nfpm: packaging/nfpm.yaml): stops
# hafeed.service on removal, as dh_installsystemd would. Upgrades restart it
# in postinst instead. HAProxy keeps the last weight and admin state it
# received while the agent is down.
set -e

if [ -z "${DPKG_ROOT:-}" ] && [ "$1" = "remove" ] && [ -d /run/systemd/system ]; then
	deb-systemd-invoke stop 'hafeed.service' >/dev/null || true
fi

exit 0
