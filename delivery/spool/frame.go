package spool

import (
	"encoding/binary"
	"errors"
	"hash/crc32"
)

// A segment file is a sequence of frames:
//
//	length   uint32 LE  bytes after the 8-byte frame header
//	crc      uint32 LE  CRC-32C (Castagnoli) of those bytes
//	seq      uint64 LE  record sequence number, increasing within a spool
//	at       int64  LE  when the record was accepted, Unix nanoseconds
//	payload  length-16 bytes
//
// A frame whose length is out of range or whose checksum does not match
// ends the readable part of its segment: nothing after it is trusted.
const (
	frameHeader = 8  // length + crc
	recordHead  = 16 // seq + at
	// MaxPayload bounds one record's payload; a larger length field is
	// corruption, never an allocation request.
	MaxPayload = 4 << 20
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Errors of DecodeFrame.
var (
	// ErrShort means b holds less than one whole frame (a torn tail).
	ErrShort = errors.New("spool: truncated frame")
	// ErrCorrupt means the frame's length or checksum is wrong.
	ErrCorrupt = errors.New("spool: corrupt frame")
)

// Record is one decoded frame. Payload refers to the bytes passed to
// DecodeFrame.
type Record struct {
	Seq     uint64
	At      int64 // Unix nanoseconds
	Payload []byte
}

// AppendFrame appends the frame of one record to dst and returns it.
func AppendFrame(dst []byte, seq uint64, at int64, payload []byte) []byte {
	n := recordHead + len(payload)
	start := len(dst)
	dst = binary.LittleEndian.AppendUint32(dst, uint32(n))
	dst = binary.LittleEndian.AppendUint32(dst, 0) // crc, below
	dst = binary.LittleEndian.AppendUint64(dst, seq)
	dst = binary.LittleEndian.AppendUint64(dst, uint64(at))
	dst = append(dst, payload...)
	binary.LittleEndian.PutUint32(dst[start+4:], crc32.Checksum(dst[start+frameHeader:], castagnoli))
	return dst
}

// DecodeFrame decodes the frame at the start of b and returns it with the
// frame's size in bytes. The record's Payload refers to b. It never
// panics: a short or damaged b gives ErrShort or ErrCorrupt.
func DecodeFrame(b []byte) (Record, int, error) {
	if len(b) < frameHeader {
		return Record{}, 0, ErrShort
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n < recordHead || n > recordHead+MaxPayload {
		return Record{}, 0, ErrCorrupt
	}
	if len(b) < frameHeader+n {
		return Record{}, 0, ErrShort
	}
	body := b[frameHeader : frameHeader+n]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(b[4:]) {
		return Record{}, 0, ErrCorrupt
	}
	return Record{
		Seq:     binary.LittleEndian.Uint64(body),
		At:      int64(binary.LittleEndian.Uint64(body[8:])),
		Payload: body[recordHead:],
	}, frameHeader + n, nil
}

// frameLen returns the size of the frame whose header starts b, or 0 when
// b is too short or the length is out of range.
func frameLen(b []byte) int {
	if len(b) < frameHeader {
		return 0
	}
	n := int(binary.LittleEndian.Uint32(b))
	if n < recordHead || n > recordHead+MaxPayload {
		return 0
	}
	return frameHeader + n
}
