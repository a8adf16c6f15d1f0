package metrics

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"unsafe"

	"golang.org/x/sys/unix"
)

// errNetlinkUnavailable means sock_diag cannot be used here (no netlink in a
// sandbox, an old kernel); the procfs reader takes over.
var errNetlinkUnavailable = errors.New("netlink sock_diag unavailable")

// netlinkError says what failed. An errno that means sock_diag cannot work
// here at all (no netlink or no inet_diag in the kernel, a sandbox that
// forbids them, a filter the kernel does not know) wraps
// errNetlinkUnavailable; any other (EMFILE, ENOBUFS, ENOMEM, ...) is a
// passing shortage: that count fails and the next one tries netlink again,
// rather than giving it up for procfs, whose tables shift under a reader
// while sockets churn.
func netlinkError(what string, err error) error {
	switch {
	case errors.Is(err, unix.EAFNOSUPPORT), errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.ESOCKTNOSUPPORT),
		errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM),
		errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%w: %s: %w", errNetlinkUnavailable, what, err)
	}
	return fmt.Errorf("netlink sock_diag: %s: %w (tried again at the next count)", what, err)
}

const (
	sockDiagByFamily    = 20 // SOCK_DIAG_BY_FAMILY
	inetDiagReqBytecode = 1  // INET_DIAG_REQ_BYTECODE
	inetDiagBcSGE       = 2  // INET_DIAG_BC_S_GE
	inetDiagBcSLE       = 3  // INET_DIAG_BC_S_LE
	inetDiagBcJmp       = 1  // INET_DIAG_BC_JMP
	inetDiagReqV2Len    = 56 // sizeof(struct inet_diag_req_v2)
	inetDiagMsgSportOff = 4  // offset of id.idiag_sport in struct inet_diag_msg
	nlmsgHdrLen         = unix.SizeofNlMsghdr
	recvBufLen          = 64 * 1024
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
	err := n.dumpTCP(1<<tcpListen, nil, func(msg []byte) {
		if len(msg) >= inetDiagMsgSportOff+2 {
			p := binary.BigEndian.Uint16(msg[inetDiagMsgSportOff:])
			if !slices.Contains(ports, p) {
				ports = append(ports, p)
			}
		}
	})
	slices.Sort(ports)
	return ports, err
}

func (n netlinkSource) countEstablished(ports []uint16) (int, error) {
	count := 0
	err := n.dumpTCP(1<<tcpEstablished, portFilter(ports), func([]byte) { count++ })
	return count, err
}

func (n netlinkSource) open() (int, error) {
	if n.socket != nil {
		return n.socket()
	}
	return unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
}

// dumpTCP dumps the IPv4 and IPv6 TCP sockets in states, filtered by the
// inet_diag bytecode filter, and calls fn with each inet_diag_msg.
func (n netlinkSource) dumpTCP(states uint32, filter []byte, fn func(msg []byte)) error {
	fd, err := n.open()
	if err != nil {
		return netlinkError("opening the socket", err)
	}
	defer unix.Close(fd)
	buf := make([]byte, recvBufLen)
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		if err := unix.Sendto(fd, diagRequest(family, states, filter), 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return netlinkError("sending the request", err)
		}
		if err := receiveDump(fd, buf, fn); err != nil {
			if family == unix.AF_INET6 && errors.Is(err, unix.ENOENT) {
				continue // no IPv6 in this kernel
			}
			return err
		}
	}
	return nil
}

func receiveDump(fd int, buf []byte, fn func(msg []byte)) error {
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("receiving sock_diag dump: %w", err)
		}
		b := buf[:n]
		for len(b) >= nlmsgHdrLen {
			h := (*unix.NlMsghdr)(unsafe.Pointer(&b[0]))
			msgLen := int(h.Len)
			if msgLen < nlmsgHdrLen || msgLen > len(b) {
				return fmt.Errorf("malformed netlink message of %d bytes", msgLen)
			}
			switch h.Type {
			case unix.NLMSG_DONE:
				return nil
			case unix.NLMSG_ERROR:
				if msgLen >= nlmsgHdrLen+4 {
					if errno := int32(binary.NativeEndian.Uint32(b[nlmsgHdrLen:])); errno != 0 {
						return netlinkError("dump", unix.Errno(-errno))
					}
				}
				return nil
			case sockDiagByFamily:
				fn(b[nlmsgHdrLen:msgLen])
			}
			b = b[nlmsgAlign(msgLen):]
			if len(b) > 0 && len(b) < nlmsgHdrLen {
				break
			}
		}
	}
}

func nlmsgAlign(n int) int { return (n + 3) &^ 3 }

// diagRequest builds an nlmsghdr + inet_diag_req_v2 dump request, with the
// bytecode filter as an INET_DIAG_REQ_BYTECODE attribute.
func diagRequest(family uint8, states uint32, filter []byte) []byte {
	attrLen := 0
	if len(filter) > 0 {
		attrLen = unix.SizeofRtAttr + len(filter)
	}
	total := nlmsgHdrLen + inetDiagReqV2Len + attrLen
	b := make([]byte, total)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(total))
	ne.PutUint16(b[4:], sockDiagByFamily)
	ne.PutUint16(b[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(b[8:], 1) // sequence
	req := b[nlmsgHdrLen:]
	req[0] = family
	req[1] = unix.IPPROTO_TCP
	ne.PutUint32(req[4:], states)
	if attrLen > 0 {
		attr := b[nlmsgHdrLen+inetDiagReqV2Len:]
		ne.PutUint16(attr[0:], uint16(attrLen))
		ne.PutUint16(attr[2:], inetDiagReqBytecode)
		copy(attr[unix.SizeofRtAttr:], filter)
	}
	return b
}

// portFilter compiles "sport == p1 || sport == p2 || ..." into inet_diag
// bytecode, the way ss compiles its filters. Each port is five ops:
//
//	S_GE port (+ port)   yes: next op   no: next port, or reject
//	S_LE port (+ port)   yes: next op   no: next port, or reject
//	JMP                  always: to the end of the program (accept)
//
// Landing exactly on the end accepts, jumping past it rejects. S_GE/S_LE
// work on every kernel with sock_diag, unlike S_EQ, and the JMP carries the
// long jump that an op's 8-bit "yes" offset could not.
func portFilter(ports []uint16) []byte {
	const opLen = 4 // struct inet_diag_bc_op {u8 code; u8 yes; u16 no;}
	const portLen = 5 * opLen
	total := portLen * len(ports)
	b := make([]byte, total)
	for i, port := range ports {
		off := i * portLen
		last := i == len(ports)-1
		missGE, missLE := portLen, portLen-2*opLen
		if last {
			missGE, missLE = total-off+4, total-off-2*opLen+4
		}
		putOp(b[off:], inetDiagBcSGE, 2*opLen, missGE)
		putOp(b[off+opLen:], 0, 0, int(port))
		putOp(b[off+2*opLen:], inetDiagBcSLE, 2*opLen, missLE)
		putOp(b[off+3*opLen:], 0, 0, int(port))
		putOp(b[off+4*opLen:], inetDiagBcJmp, opLen, total-off-4*opLen)
	}
	return b
}

func putOp(b []byte, code uint8, yes, no int) {
	b[0] = code
	b[1] = uint8(yes)
	binary.NativeEndian.PutUint16(b[2:], uint16(no))
}
