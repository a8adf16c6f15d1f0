// Package packaging holds the tests of hafeed's systemd unit
// (deploy/hafeed.service) and Debian package (packaging/nfpm.yaml and the
// maintainer scripts beside it). It has no code of its own.
//
// The tests carry the build tag "packaging" and run in a step of their own
// (`make test-packaging`: go test -tags packaging ./packaging), before and not
// beside the other packages' tests. By default they build the .deb and check
// it without installing it: contents, conffiles, maintainer scripts, and the
// unit with systemd-analyze verify and security on the extracted files.
// TestDebInstall, which installs, upgrades, removes and purges the package
// (creating the system user hafeed), changes the machine: it runs only with
// CI=true or HAFEED_TEST_DPKG=1, as root. They need systemd-analyze, dpkg
// and adduser (`make deps` installs them with CI=true; elsewhere the checks
// that need a missing one are skipped, saying so) and nfpm (bin/tools).
package packaging
