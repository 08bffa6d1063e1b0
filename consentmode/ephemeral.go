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
//
// A hit without _p (server-built and third-party clients leave it out)
// has no page to be scoped to: the MAC then covers the caller's per-hit
// nonce instead (0xff, which no _p holds, then the nonce), so no two
// visitors share an id and no two pages are linked. Nothing about the
// visitor (IP, User-Agent) goes in: that would be a fingerprint.
func (p *Policy) ephemeral(day int64, tid, pageID []byte, nonce uint64) [sha256.Size]byte {
	var msg [sha256.BlockSize + 8 + 64 + 1 + 64]byte
	n := copy(msg[:], p.ipad[:])
	binary.BigEndian.PutUint64(msg[n:], uint64(day))
	n += 8
	n += copy(msg[n:], clip(tid, 64))
	msg[n] = 0
	n++
	if len(pageID) > 0 {
		n += copy(msg[n:], clip(pageID, 64))
	} else {
		msg[n] = 0xff
		binary.BigEndian.PutUint64(msg[n+1:], nonce)
		n += 9
	}
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

// maxPageAge is how far back a page load (_p) may lie and still date the
// ids: a tab open longer than a day gets the hit's own time.
const maxPageAge = secondsPerDay

// idTime returns the unix seconds the ephemeral ids carry: the page load
// time (_p, in milliseconds) when it lies within maxPageAge before the hit
// (a little ahead, clock skew, counts as the hit time), else the hit time.
// So first visit (cid) = session start (sid) <= hit time, and every hit of
// one page load carries the same ids. now is the hit time in unix seconds.
func idTime(pageID []byte, now int64) int64 {
	if len(pageID) == 0 || len(pageID) > 16 {
		return now
	}
	var ms int64
	for _, c := range pageID {
		if c < '0' || c > '9' {
			return now
		}
		ms = ms*10 + int64(c-'0')
	}
	switch t := ms / 1000; {
	case t > now && t <= now+300:
		return now
	case t <= now && t >= now-maxPageAge:
		return t
	}
	return now
}

// appendEphemeralCID appends a client id shaped like gtag's
// ("<31-bit number>.<unix seconds>"): the number from the MAC, the seconds
// from idTime.
func appendEphemeralCID(dst []byte, mac *[sha256.Size]byte, secs int64) []byte {
	n := binary.BigEndian.Uint32(mac[0:4]) & 0x7fffffff
	dst = strconv.AppendUint(dst, uint64(n), 10)
	dst = append(dst, '.')
	return strconv.AppendInt(dst, secs, 10)
}

// appendEphemeralSID appends a session id shaped like gtag's (unix
// seconds): the session starts with the page load (idTime).
func appendEphemeralSID(dst []byte, secs int64) []byte {
	return strconv.AppendInt(dst, secs, 10)
}
