package declog

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"
)

// Chain makes a decision log tamper-evident. Every line carries "seq",
// its number in the chain, and "prev", the SHA-256 (hex) of the line
// before it, exactly as written, without its newline. A log starts with a
// header line (instance, policy version, build version and the key that
// signs it); with a Key, a checkpoint line signed with Ed25519 follows
// every Checkpoint interval in which records were written, and one at
// Close. See Verifier for what an auditor checks.
type Chain struct {
	// Instance names the gateway that writes the log (its host name).
	Instance string
	// PolicyVersion and Version are the configuration's policy version
	// and the build's version at start, for the header.
	PolicyVersion, Version string
	// Checkpoint is the interval between checkpoints.
	Checkpoint time.Duration
	// Key signs checkpoints; nil: no checkpoints, the log is unsigned.
	Key ed25519.PrivateKey
	// Seq and Prev continue an earlier log: the number and the hash of its
	// last line. Zero values start a new chain; Open fills them in from
	// the file it appends to.
	Seq  uint64
	Prev [sha256.Size]byte

	// torn is true when the file ends in a partial line (a crash): the
	// header starts on a line of its own.
	torn bool
	// statePath is where the chain's end is saved at each checkpoint and
	// at Close ("": nowhere), so that a new file after a rotation
	// continues it.
	statePath string
	// records counts the lines since the last checkpoint.
	records uint64
}

// WithChain adds a hash chain, and with c.Key signed checkpoints, to the log.
func WithChain(c Chain) Option {
	return func(l *Log) { l.chain = &c }
}

// checkpointDomain prefixes what a checkpoint's signature covers, so that
// the key signs nothing else by accident.
const checkpointDomain = "consentgate decision-log checkpoint v1\n"

// next numbers the next line: its seq and the previous line's hash.
func (c *Chain) next() (uint64, string) {
	c.Seq++
	return c.Seq, hex.EncodeToString(c.Prev[:])
}

// link makes line (with its newline) the chain's latest.
func (c *Chain) link(line []byte) {
	c.Prev = sha256.Sum256(bytes.TrimSuffix(line, []byte{'\n'}))
	c.records++
}

// header writes the header line.
func (l *Log) header() {
	c := l.chain
	var b []byte
	if c.torn {
		b = append(b, '\n')
		if l.buf != nil {
			_, _ = l.buf.Write(b)
		}
		b = b[:0]
	}
	seq, prev := c.next()
	b = markStart(b, kindHeader, seq, prev)
	b = appendField(b, "instance", c.Instance)
	b = appendField(b, "policy_version", c.PolicyVersion)
	b = appendField(b, "version", c.Version)
	if c.Key != nil {
		b = appendField(b, "key", KeyID(c.Key.Public().(ed25519.PublicKey)))
	}
	l.emit(append(b, '}', '\n'))
	c.records = 0
}

// checkpoint writes a signed checkpoint if records were written since the
// last one. The signature covers the line up to its "sig" field: the
// line's seq, the previous line's hash (and so the whole chain before
// it), the time and the counts.
func (l *Log) checkpoint() {
	c := l.chain
	if c.Key == nil || c.records == 0 {
		return
	}
	seq, prev := c.next()
	b := markStart(nil, kindCheckpoint, seq, prev)
	b = append(b, `,"records":`...)
	b = strconv.AppendUint(b, c.records, 10)
	b = append(b, `,"dropped":`...)
	b = strconv.AppendUint(b, l.lost.Load(), 10)
	b = appendField(b, "key", KeyID(c.Key.Public().(ed25519.PublicKey)))
	sig := ed25519.Sign(c.Key, append([]byte(checkpointDomain), b...))
	b = appendField(b, "sig", base64.StdEncoding.EncodeToString(sig))
	l.emit(append(b, '}', '\n'))
	c.records = 0
}

// markStart begins a header or checkpoint line: kind, time, seq, prev.
func markStart(b []byte, kind string, seq uint64, prev string) []byte {
	b = append(b, `{"kind":"`...)
	b = append(b, kind...)
	b = append(b, `","ts":"`...)
	b = time.Now().UTC().AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","seq":`...)
	b = strconv.AppendUint(b, seq, 10)
	return appendField(b, "prev", prev)
}

// appendField appends ,"key":"value" with value quoted as JSON.
func appendField(b []byte, key, value string) []byte {
	q, _ := json.Marshal(value) // a string always marshals
	b = append(append(append(b, `,"`...), key...), `":`...)
	return append(b, q...)
}

// chainState is what the state file holds.
type chainState struct {
	Seq  uint64 `json:"seq"`
	Hash string `json:"hash"`
}

// save writes the chain's end to the state file; a failure is reported
// on stderr (the log goes on).
func (c *Chain) save() {
	if c.statePath == "" {
		return
	}
	b, _ := json.Marshal(chainState{c.Seq, hex.EncodeToString(c.Prev[:])})
	tmp := c.statePath + ".tmp"
	err := os.WriteFile(tmp, append(b, '\n'), 0o640)
	if err == nil {
		err = os.Rename(tmp, c.statePath)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "decision log: save chain state: %v\n", err)
	}
}

// maxTail is how much of a log's end resume reads to find its last line.
const maxTail = 1 << 20

// resume continues the chain of the log at path: from its last complete
// line, or, when it has none, from its state file. A path that is not a
// regular file (/dev/null, a pipe) starts a new chain and keeps no state.
func (c *Chain) resume(path string) error {
	if st, err := os.Stat(path); err == nil && !st.Mode().IsRegular() {
		return nil
	}
	c.statePath = path + ".chain"
	line, torn, err := lastLine(path)
	if err != nil {
		return err
	}
	c.torn = torn
	if line != nil {
		var l struct {
			Seq uint64 `json:"seq"`
		}
		_ = json.Unmarshal(line, &l) // a line that is not a record starts over at its seq 0
		c.Seq, c.Prev = l.Seq, sha256.Sum256(line)
		return nil
	}
	data, err := os.ReadFile(c.statePath)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var s chainState
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("%s: %w", c.statePath, err)
	}
	h, err := hex.DecodeString(s.Hash)
	if err != nil || len(h) != sha256.Size {
		return fmt.Errorf("%s: hash %q is not a SHA-256", c.statePath, s.Hash)
	}
	c.Seq = s.Seq
	copy(c.Prev[:], h)
	return nil
}

// lastLine returns the last complete line of the file at path (nil when
// it has none or does not exist) and whether a partial line follows it.
func lastLine(path string) (line []byte, torn bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer func() { _ = f.Close() }() // read only
	st, err := f.Stat()
	if err != nil {
		return nil, false, err
	}
	off := max(st.Size()-maxTail, 0)
	tail := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(tail, off); err != nil && !errors.Is(err, io.EOF) {
		return nil, false, err
	}
	if len(tail) == 0 {
		return nil, false, nil
	}
	torn = tail[len(tail)-1] != '\n'
	end := bytes.LastIndexByte(tail, '\n')
	if end < 0 {
		return nil, torn, nil
	}
	start := bytes.LastIndexByte(tail[:end], '\n') + 1
	if start == 0 && off > 0 {
		return nil, false, fmt.Errorf("%s: last line longer than %d bytes", path, maxTail)
	}
	return tail[start:end], torn, nil
}

// The kinds of chain lines that hold no decision.
const (
	kindHeader     = "header"
	kindCheckpoint = "checkpoint"
)
