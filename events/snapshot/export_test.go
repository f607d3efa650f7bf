package snapshot

import "encoding/binary"

// Rechecksum sets the checksum of a snapshot whose bytes a test changed, so that the change
// itself is what a reader meets.
func Rechecksum(b []byte) []byte {
	if len(b) >= HeaderSize {
		binary.LittleEndian.PutUint32(b[12:], checksum(b))
	}
	return b
}
