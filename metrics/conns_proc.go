package metrics

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strconv"
)

// parseProcNetTCP calls fn with the local port and state of every socket
// listed in a /proc/net/tcp or /proc/net/tcp6 table.
func parseProcNetTCP(r io.Reader, fn func(localPort uint16, state uint8)) error {
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
		fn(uint16(port), uint8(state))
	}
	return sc.Err()
}
