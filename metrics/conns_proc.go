package metrics

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"net/netip"
	"strconv"
)

// procSocket is one line of a /proc/net/tcp or /proc/net/tcp6 table. The
// addresses are as the table writes them, in hex (parseProcAddr reads
// them), and only valid until fn returns.
type procSocket struct {
	localAddr, remoteAddr []byte
	localPort, remotePort uint16
	state                 uint8
}

// parseProcNetTCP calls fn with every socket listed in a /proc/net/tcp or
// /proc/net/tcp6 table.
func parseProcNetTCP(r io.Reader, fn func(procSocket)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 64*1024)
	header := true
	for sc.Scan() {
		if header {
			header = false
			continue
		}
		// "  0: 0100007F:1F90 00000000:0000 0A ..."
		fields := bytes.Fields(sc.Bytes())
		if len(fields) < 4 {
			continue
		}
		var s procSocket
		var err error
		if s.localAddr, s.localPort, err = parseProcEndpoint(fields[1]); err != nil {
			return fmt.Errorf("malformed local address: %w", err)
		}
		if s.remoteAddr, s.remotePort, err = parseProcEndpoint(fields[2]); err != nil {
			return fmt.Errorf("malformed remote address: %w", err)
		}
		state, err := strconv.ParseUint(string(fields[3]), 16, 8)
		if err != nil {
			return fmt.Errorf("malformed state %q: %w", fields[3], err)
		}
		s.state = uint8(state)
		fn(s)
	}
	return sc.Err()
}

// parseProcEndpoint splits "0100007F:1F90" into the address, still in hex,
// and the port.
func parseProcEndpoint(field []byte) ([]byte, uint16, error) {
	colon := bytes.LastIndexByte(field, ':')
	if colon < 0 {
		return nil, 0, fmt.Errorf("%q has no port", field)
	}
	port, err := strconv.ParseUint(string(field[colon+1:]), 16, 16)
	if err != nil {
		return nil, 0, fmt.Errorf("port in %q: %w", field, err)
	}
	return field[:colon], uint16(port), nil
}

// parseProcAddr reads an address as /proc/net/tcp{,6} writes it: the
// bytes of the kernel's in6_addr/in_addr, each 32-bit word in host order,
// in hex.
func parseProcAddr(hex []byte) (netip.Addr, bool) {
	if len(hex) != 8 && len(hex) != 32 {
		return netip.Addr{}, false
	}
	var b [16]byte
	for w := 0; w < len(hex)/8; w++ {
		v, err := strconv.ParseUint(string(hex[w*8:w*8+8]), 16, 32)
		if err != nil {
			return netip.Addr{}, false
		}
		binary.NativeEndian.PutUint32(b[w*4:], uint32(v))
	}
	if len(hex) == 8 {
		return netip.AddrFrom4([4]byte(b[:4])), true
	}
	return netip.AddrFrom16(b).Unmap(), true
}
