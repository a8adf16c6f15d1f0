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

// parseProcNetTCP calls fn with the local address and port, the remote
// address (the addresses as the table writes them, in hex: parseProcAddr
// reads them) and the state of every socket listed in a /proc/net/tcp or
// /proc/net/tcp6 table.
func parseProcNetTCP(r io.Reader, fn func(localAddr []byte, localPort uint16, remote []byte, state uint8)) error {
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
		local := fields[1]
		colon := bytes.LastIndexByte(local, ':')
		if colon < 0 {
			return fmt.Errorf("malformed local address %q", local)
		}
		port, err := strconv.ParseUint(string(local[colon+1:]), 16, 16)
		if err != nil {
			return fmt.Errorf("malformed local port in %q: %w", local, err)
		}
		state, err := strconv.ParseUint(string(fields[3]), 16, 8)
		if err != nil {
			return fmt.Errorf("malformed state %q: %w", fields[3], err)
		}
		remote, _, _ := bytes.Cut(fields[2], []byte(":"))
		fn(local[:colon], uint16(port), remote, uint8(state))
	}
	return sc.Err()
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
