// Package packaging holds the tests of hafeed's systemd unit
// (deploy/hafeed.service) and Debian package (packaging/nfpm.yaml and the
// maintainer scripts beside it). It has no code of its own.
//
// The tests carry the build tag "packaging" because they change the machine:
// they install the package with dpkg -i, which creates the system user
// hafeed, and purge it again. `make test` runs them in a step of their own
// (`make test-packaging`: go test -tags packaging ./packaging), before and not
// beside the other packages' tests. They need systemd-analyze, dpkg and nfpm
// (`make deps` installs what is missing) and, to install, root.
package packaging
