package crypto

import "encoding/binary"

// serviceKeyLabel separates the associated data of service keys from that of
// client secrets (adLabel), so that neither can be opened as the other.
const serviceKeyLabel = "dynconn.service-key.1"

// ServiceKeyAssociatedData returns the associated data that binds a sealed
// service key (a key dynconn itself needs, kept sealed in the database like a
// client secret) to its name.
func ServiceKeyAssociatedData(name string) []byte {
	b := make([]byte, 0, len(serviceKeyLabel)+4+len(name))
	b = append(b, serviceKeyLabel...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(name)))
	return append(b, name...)
}
