package sockdiag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TCP states as the kernel numbers them (include/net/tcp_states.h), and
// the state masks a dump takes.
const (
	StateEstablished = 1
	StateListen      = 10

	Established uint32 = 1 << StateEstablished
	Listening   uint32 = 1 << StateListen
)

// ErrUnavailable means sock_diag cannot be used here (no netlink in a
// sandbox, an old kernel): a caller that can read the tables another way
// should.
var ErrUnavailable = errors.New("netlink sock_diag unavailable")

// netlinkError says what failed. An errno that means sock_diag cannot work
// here at all (no netlink or no inet_diag in the kernel, a sandbox that
// forbids them, a filter the kernel does not know) wraps ErrUnavailable;
// any other (EMFILE, ENOBUFS, ENOMEM, ...) is a passing shortage: that
// request fails and the next one tries netlink again.
func netlinkError(what string, err error) error {
	switch {
	case errors.Is(err, unix.EAFNOSUPPORT), errors.Is(err, unix.EPROTONOSUPPORT), errors.Is(err, unix.ESOCKTNOSUPPORT),
		errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.EACCES), errors.Is(err, unix.EPERM),
		errors.Is(err, unix.EINVAL), errors.Is(err, unix.ENOENT):
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, what, err)
	}
	return fmt.Errorf("netlink sock_diag: %s: %w (tried again at the next request)", what, err)
}

const (
	sockDiagByFamily    = 20 // SOCK_DIAG_BY_FAMILY
	sockDestroy         = 21 // SOCK_DESTROY
	inetDiagReqBytecode = 1  // INET_DIAG_REQ_BYTECODE
	inetDiagBcSGE       = 2  // INET_DIAG_BC_S_GE
	inetDiagBcSLE       = 3  // INET_DIAG_BC_S_LE
	inetDiagBcJmp       = 1  // INET_DIAG_BC_JMP
	inetDiagReqV2Len    = 56 // sizeof(struct inet_diag_req_v2)
	sockIDLen           = 48 // sizeof(struct inet_diag_sockid)
	// Offsets in struct inet_diag_msg: family, state, timer, retrans, then
	// the sockid (sport, dport, src[4], dst[4], if, cookie[2]), then
	// expires, rqueue, wqueue, uid and inode.
	msgSockIDOff = 4
	msgSportOff  = msgSockIDOff
	msgInodeOff  = msgSockIDOff + sockIDLen + 16
	msgMinLen    = msgInodeOff + 4
	nlmsgHdrLen  = unix.SizeofNlMsghdr
	recvBufLen   = 64 * 1024
)

// Diag makes sock_diag requests, each on a netlink socket of its own.
type Diag struct {
	// Socket opens the netlink socket; nil: a NETLINK_SOCK_DIAG socket.
	// Tests make it fail as the kernel may.
	Socket func() (int, error)
}

// Sock is one socket of a dump, valid only during the callback.
type Sock []byte

// LocalPort is the socket's local port.
func (s Sock) LocalPort() uint16 { return binary.BigEndian.Uint16(s[msgSportOff:]) }

// Local is the socket's local address and port: for a connection to a
// watched port, the server line's ip:port it reached.
func (s Sock) Local() netip.AddrPort {
	src := s[msgSockIDOff+4 : msgSockIDOff+4+16]
	if s[0] == unix.AF_INET {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(src[:4])), s.LocalPort())
	}
	return netip.AddrPortFrom(netip.AddrFrom16([16]byte(src)).Unmap(), s.LocalPort())
}

// Remote is the socket's peer address: for a connection to a watched
// port, the address it came from (an HAProxy's source address).
func (s Sock) Remote() netip.Addr {
	dst := s[msgSockIDOff+4+16 : msgSockIDOff+4+32]
	if s[0] == unix.AF_INET {
		return netip.AddrFrom4([4]byte(dst[:4]))
	}
	return netip.AddrFrom16([16]byte(dst)).Unmap()
}

// Inode is the socket's inode number. The kernel hands them out in
// increasing order, so a lower number is, roughly, an older socket.
func (s Sock) Inode() uint32 { return binary.NativeEndian.Uint32(s[msgInodeOff:]) }

// Key names the socket for Destroy, after the dump.
func (s Sock) Key() Key {
	k := Key{family: s[0]}
	copy(k.id[:], s[msgSockIDOff:msgSockIDOff+sockIDLen])
	return k
}

// Key names one socket: its family and its inet_diag_sockid (addresses,
// ports, interface and the kernel's cookie, which tells a socket from a
// later one on the same addresses).
type Key struct {
	family uint8
	id     [sockIDLen]byte
}

func (d Diag) open() (int, error) {
	if d.Socket != nil {
		return d.Socket()
	}
	return unix.Socket(unix.AF_NETLINK, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
}

// EachTCP dumps the IPv4 and IPv6 TCP sockets in states (a mask such as
// Established) whose local port is one of ports (every port when empty),
// and calls fn with each.
func (d Diag) EachTCP(states uint32, ports []uint16, fn func(Sock)) error {
	fd, err := d.open()
	if err != nil {
		return netlinkError("opening the socket", err)
	}
	defer unix.Close(fd)
	var filter []byte
	if len(ports) > 0 {
		filter = portFilter(ports)
	}
	buf := make([]byte, recvBufLen)
	for _, family := range []uint8{unix.AF_INET, unix.AF_INET6} {
		req := request(sockDiagByFamily, unix.NLM_F_REQUEST|unix.NLM_F_DUMP, family, states, nil, filter)
		if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return netlinkError("sending the request", err)
		}
		err := receive(fd, buf, func(msg []byte) {
			if len(msg) >= msgMinLen {
				fn(Sock(msg))
			}
		})
		if err != nil {
			if family == unix.AF_INET6 && errors.Is(err, unix.ENOENT) {
				continue // no IPv6 in this kernel
			}
			return err
		}
	}
	return nil
}

// ErrCannotDestroy says that this kernel or this process cannot close
// sockets: no CAP_NET_ADMIN (EPERM), or a kernel built without
// CONFIG_INET_DIAG_DESTROY (EOPNOTSUPP).
var ErrCannotDestroy = errors.New("cannot close sockets through sock_diag")

// Destroy closes the sockets named by keys, as ss -K does: the kernel
// aborts each (the local application reads ECONNABORTED) and sends the
// peer a reset. It stops at the first key for which fn returns false, and
// says how many it closed. A socket already gone is skipped. Closing needs
// CAP_NET_ADMIN and CONFIG_INET_DIAG_DESTROY: without either the error
// wraps ErrCannotDestroy.
func (d Diag) Destroy(keys []Key, more func() bool) (int, error) {
	if len(keys) == 0 {
		return 0, nil
	}
	fd, err := d.open()
	if err != nil {
		return 0, netlinkError("opening the socket", err)
	}
	defer unix.Close(fd)
	buf := make([]byte, recvBufLen)
	closed := 0
	for _, k := range keys {
		if more != nil && !more() {
			break
		}
		req := request(sockDestroy, unix.NLM_F_REQUEST|unix.NLM_F_ACK, k.family, ^uint32(0), k.id[:], nil)
		if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
			return closed, netlinkError("sending the request", err)
		}
		err := receive(fd, buf, nil)
		switch {
		case err == nil:
			closed++
		case errors.Is(err, unix.ENOENT):
			// It ended by itself meanwhile.
		case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES):
			return closed, fmt.Errorf("%w: it needs CAP_NET_ADMIN (%w)", ErrCannotDestroy, unix.EPERM)
		case errors.Is(err, unix.EOPNOTSUPP):
			return closed, fmt.Errorf("%w: this kernel is built without CONFIG_INET_DIAG_DESTROY (%w)", ErrCannotDestroy, unix.EOPNOTSUPP)
		default:
			return closed, err
		}
	}
	return closed, nil
}

// CanDestroy says whether Destroy can work here, by asking the kernel to
// close a socket that does not exist: a kernel that can answers "no such
// socket" (ENOENT), one built without CONFIG_INET_DIAG_DESTROY "not
// supported". It does not check CAP_NET_ADMIN, which the kernel checks
// only once it has found the socket.
func (d Diag) CanDestroy() error {
	var k Key
	k.family = unix.AF_INET
	binary.BigEndian.PutUint16(k.id[0:], 1)
	binary.BigEndian.PutUint16(k.id[2:], 1)
	_, err := d.Destroy([]Key{k}, nil)
	return err
}

// receive reads the replies to one request until NLMSG_DONE or an
// NLMSG_ERROR (an ack with errno 0 ends it without error), calling fn with
// each SOCK_DIAG_BY_FAMILY message.
func receive(fd int, buf []byte, fn func(msg []byte)) error {
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return fmt.Errorf("receiving from sock_diag: %w", err)
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
						return netlinkError("request", unix.Errno(-errno))
					}
				}
				return nil
			case sockDiagByFamily:
				if fn != nil {
					fn(b[nlmsgHdrLen:msgLen])
				}
			}
			b = b[nlmsgAlign(msgLen):]
			if len(b) > 0 && len(b) < nlmsgHdrLen {
				break
			}
		}
	}
}

func nlmsgAlign(n int) int { return (n + 3) &^ 3 }

// request builds an nlmsghdr + inet_diag_req_v2 request of type typ, for
// the socket id (nil: any) or with the bytecode filter as an
// INET_DIAG_REQ_BYTECODE attribute.
func request(typ, flags uint16, family uint8, states uint32, id, filter []byte) []byte {
	attrLen := 0
	if len(filter) > 0 {
		attrLen = unix.SizeofRtAttr + len(filter)
	}
	total := nlmsgHdrLen + inetDiagReqV2Len + attrLen
	b := make([]byte, total)
	ne := binary.NativeEndian
	ne.PutUint32(b[0:], uint32(total))
	ne.PutUint16(b[4:], typ)
	ne.PutUint16(b[6:], flags)
	ne.PutUint32(b[8:], 1) // sequence
	req := b[nlmsgHdrLen:]
	req[0] = family
	req[1] = unix.IPPROTO_TCP
	ne.PutUint32(req[4:], states)
	copy(req[8:8+sockIDLen], id)
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

// HasNetAdmin says whether this process holds CAP_NET_ADMIN in its
// effective set, which Destroy needs.
func HasNetAdmin() (bool, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false, fmt.Errorf("reading this process's capabilities: %w", err)
	}
	return data[unix.CAP_NET_ADMIN/32].Effective&(1<<(unix.CAP_NET_ADMIN%32)) != 0, nil
}
