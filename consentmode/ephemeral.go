package consentmode

import (
	"crypto/sha256"
	"encoding/binary"
	"strconv"
)

// secondsPerDay is the length of the ephemeral ids' day.
const secondsPerDay = 86400

// ephemeral computes HMAC-SHA256(secret, day || tid || 0 || _p): the same
// for every hit of one page load on every replica that shares the secret,
// different for another page load or day, and not derivable from the
// original identifiers (they are not part of the input). tid and _p longer
// than 64 bytes are cut; real ones are far shorter.
func (p *Policy) ephemeral(day int64, tid, pageID []byte) [sha256.Size]byte {
	var msg [sha256.BlockSize + 8 + 64 + 1 + 64]byte
	n := copy(msg[:], p.ipad[:])
	binary.BigEndian.PutUint64(msg[n:], uint64(day))
	n += 8
	n += copy(msg[n:], clip(tid, 64))
	msg[n] = 0
	n++
	n += copy(msg[n:], clip(pageID, 64))
	inner := sha256.Sum256(msg[:n])

	var outer [sha256.BlockSize + sha256.Size]byte
	copy(outer[:], p.opad[:])
	copy(outer[sha256.BlockSize:], inner[:])
	return sha256.Sum256(outer[:])
}

func clip(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// appendEphemeralCID appends a client id shaped like gtag's
// ("<31-bit number>.<unix seconds>"): the number from the MAC, the
// seconds a MAC-chosen moment of the UTC day.
func appendEphemeralCID(dst []byte, mac *[sha256.Size]byte, day int64) []byte {
	n := binary.BigEndian.Uint32(mac[0:4]) & 0x7fffffff
	secs := day*secondsPerDay + int64(binary.BigEndian.Uint32(mac[4:8])%secondsPerDay)
	dst = strconv.AppendUint(dst, uint64(n), 10)
	dst = append(dst, '.')
	return strconv.AppendInt(dst, secs, 10)
}

// appendEphemeralSID appends a session id shaped like gtag's (unix
// seconds): a MAC-chosen moment of the UTC day.
func appendEphemeralSID(dst []byte, mac *[sha256.Size]byte, day int64) []byte {
	secs := day*secondsPerDay + int64(binary.BigEndian.Uint32(mac[8:12])%secondsPerDay)
	return strconv.AppendInt(dst, secs, 10)
}
