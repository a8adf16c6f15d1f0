package metrics

import (
	"slices"

	"github.com/hafeed/hafeed/internal/sockdiag"
)

// netlinkSource reads TCP sockets through NETLINK_SOCK_DIAG, as ss does: the
// kernel filters by state and port and the reply is only counted, not parsed.
type netlinkSource struct {
	// socket opens the netlink socket; nil: a NETLINK_SOCK_DIAG socket.
	// Tests make it fail as the kernel may.
	socket func() (int, error)
}

func (n netlinkSource) listeningPorts() ([]uint16, error) {
	var ports []uint16
	err := sockdiag.Diag{Socket: n.socket}.EachTCP(sockdiag.Listening, nil, func(s sockdiag.Sock) {
		if p := s.LocalPort(); !slices.Contains(ports, p) {
			ports = append(ports, p)
		}
	})
	slices.Sort(ports)
	return ports, err
}

func (n netlinkSource) countEstablished(ports []uint16, paths pathTally) (int, error) {
	count := 0
	err := sockdiag.Diag{Socket: n.socket}.EachTCP(sockdiag.Established, ports, func(s sockdiag.Sock) {
		count++
		paths.add(Path{Peer: s.Remote(), Local: s.Local()})
	})
	return count, err
}
