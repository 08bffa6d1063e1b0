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
)

// Verdict is what a Verifier concludes about a set of logs.
type Verdict uint8

const (
	// Verified: the chain is unbroken and every line is covered by a
	// checkpoint whose signature verifies under the given key.
	Verified Verdict = iota
	// Unsigned: the chain is unbroken, but some lines are covered by no
	// valid signature (no key given, no checkpoint yet, or lines written
	// before the chain began).
	Unsigned
	// Tampered: a line is missing, out of order, edited, truncated or
	// unreadable, or a checkpoint's signature does not verify.
	Tampered
)

func (v Verdict) String() string {
	switch v {
	case Verified:
		return "verified"
	case Unsigned:
		return "unsigned"
	}
	return "tampered"
}

// MarshalText writes the verdict's name.
func (v Verdict) MarshalText() ([]byte, error) { return []byte(v.String()), nil }

// The kinds of Problem.
const (
	ProblemGap          = "gap"           // records missing before the line
	ProblemReordered    = "reordered"     // the line's seq does not follow the one before
	ProblemEdited       = "edited"        // the line no longer hashes to the next line's prev
	ProblemTruncated    = "truncated"     // the file ends in a partial line
	ProblemUnreadable   = "unreadable"    // not a chain line: edited, or torn by a crash
	ProblemInserted     = "inserted"      // a line without seq inside a chained log
	ProblemBadSignature = "bad_signature" // a checkpoint that does not verify under the key
)

// Problem is one break of the chain, at a line of a file.
type Problem struct {
	Pos
	Kind   string `json:"kind"`
	Detail string `json:"detail"`
}

// Pos is a line of a log file (lines count from 1) and, for a chained
// line, its seq.
type Pos struct {
	File string `json:"file"`
	Line int    `json:"line"`
	Seq  uint64 `json:"seq,omitempty"`
}

func (p Pos) String() string { return fmt.Sprintf("%s:%d", p.File, p.Line) }

// Span is a run of consecutive lines, possibly across files.
type Span struct {
	From  Pos `json:"from"`
	To    Pos `json:"to"`
	Lines int `json:"lines"`
}

// Report is what a Verifier found.
type Report struct {
	Files   []string `json:"files"`
	Lines   int      `json:"lines"`
	Records int      `json:"records"`
	// Start is the prev of the first chained line: the hash of the line
	// the first file continues, all zeros for a chain that starts there.
	Start string `json:"start,omitempty"`
	// KeyID names the key signatures were checked against; "" none.
	KeyID string `json:"key,omitempty"`
	// Signed are the spans covered by a checkpoint that verifies, Unsigned
	// those that are not.
	Signed   []Span    `json:"signed"`
	Unsigned []Span    `json:"unsigned"`
	Problems []Problem `json:"problems"`
	Verdict  Verdict   `json:"verdict"`
}

// Verifier checks decision logs written with a Chain: feed it the files in
// the order they were written (rotated files first), then read Report.
type Verifier struct {
	pub     ed25519.PublicKey
	rep     Report
	started bool // a chained line was seen
	seq     uint64
	prev    [sha256.Size]byte
	last    Pos
	seg     *Span // lines since the last signature or break
}

// NewVerifier returns a Verifier that checks checkpoint signatures
// against pub; with a nil pub it checks the chain only, and the verdict
// is at best Unsigned.
func NewVerifier(pub ed25519.PublicKey) *Verifier {
	v := &Verifier{pub: pub}
	if pub != nil {
		v.rep.KeyID = KeyID(pub)
	}
	return v
}

// File checks the lines of one file, continuing the chain of the files
// before it. data is not kept.
func (v *Verifier) File(name string, data []byte) {
	v.rep.Files = append(v.rep.Files, name)
	torn := len(data) > 0 && data[len(data)-1] != '\n'
	lines := bytes.Split(data, []byte{'\n'})
	if !torn {
		lines = lines[:len(lines)-1] // what follows the final newline
	}
	for i, line := range lines {
		v.line(Pos{File: name, Line: i + 1}, line, torn && i == len(lines)-1)
	}
}

func (v *Verifier) line(pos Pos, raw []byte, torn bool) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return // a crash's partial line is ended by a newline on restart
	}
	v.rep.Lines++
	cl, err := readChainLine(raw)
	if err != nil {
		if torn {
			v.problem(pos, ProblemTruncated, "the file ends in a partial line: "+err.Error())
		} else {
			v.problem(pos, ProblemUnreadable, err.Error()+" (edited, or torn by a crash)")
		}
		v.endSpan()
		return
	}
	if cl.kind == "" {
		v.rep.Records++
	}
	if !cl.chained {
		if v.started {
			v.problem(pos, ProblemInserted, "a line without seq and prev inside a chained log")
			v.endSpan()
			return
		}
		v.extend(pos) // written before the chain began: never signed
		return
	}
	pos.Seq = cl.seq
	switch {
	case !v.started:
		v.started = true
		v.rep.Start = hex.EncodeToString(cl.prev[:])
		v.endSpan()
	case cl.seq == v.seq+1 && cl.prev == v.prev:
	case cl.seq == v.seq+1:
		v.problem(v.last, ProblemEdited, fmt.Sprintf("its SHA-256 is not the prev of the next line (%s)", pos))
		v.endSpan()
	case cl.seq > v.seq+1:
		v.problem(pos, ProblemGap, fmt.Sprintf("%d line(s) missing before this one: seq %d follows %d (%s)", cl.seq-v.seq-1, cl.seq, v.seq, v.last))
		v.endSpan()
	default:
		v.problem(pos, ProblemReordered, fmt.Sprintf("seq %d follows %d (%s)", cl.seq, v.seq, v.last))
		v.endSpan()
	}
	v.seq, v.prev, v.last = cl.seq, sha256.Sum256(raw), pos
	v.extend(pos)
	if cl.kind != kindCheckpoint || v.pub == nil {
		return
	}
	if err := v.checkSignature(raw, cl); err != nil {
		v.problem(pos, ProblemBadSignature, err.Error())
		v.endSpan()
		return
	}
	v.rep.Signed = append(v.rep.Signed, *v.seg)
	v.seg = nil
}

func (v *Verifier) checkSignature(raw []byte, cl chainLine) error {
	if cl.key != v.rep.KeyID {
		return fmt.Errorf("signed with key %q, not the given key %s", cl.key, v.rep.KeyID)
	}
	i := bytes.LastIndex(raw, []byte(`,"sig":"`))
	if i < 0 || !bytes.HasSuffix(raw, []byte(`"}`)) {
		return errors.New("no signature at the end of the line")
	}
	sig, err := base64.StdEncoding.DecodeString(string(raw[i+len(`,"sig":"`) : len(raw)-2]))
	if err != nil || len(sig) != ed25519.SignatureSize {
		return errors.New("the signature is not a base64 Ed25519 signature")
	}
	if !ed25519.Verify(v.pub, append([]byte(checkpointDomain), raw[:i]...), sig) {
		return errors.New("the signature does not verify: the checkpoint was edited or signed with another key")
	}
	return nil
}

func (v *Verifier) problem(pos Pos, kind, detail string) {
	v.rep.Problems = append(v.rep.Problems, Problem{Pos: pos, Kind: kind, Detail: detail})
}

// extend adds pos to the current span.
func (v *Verifier) extend(pos Pos) {
	if v.seg == nil {
		v.seg = &Span{From: pos}
	}
	v.seg.To = pos
	v.seg.Lines++
}

// endSpan closes the current span as unsigned.
func (v *Verifier) endSpan() {
	if v.seg != nil {
		v.rep.Unsigned = append(v.rep.Unsigned, *v.seg)
		v.seg = nil
	}
}

// Report closes the last span and returns what was found.
func (v *Verifier) Report() *Report {
	v.endSpan()
	r := v.rep
	switch {
	case len(r.Problems) > 0:
		r.Verdict = Tampered
	case len(r.Unsigned) > 0 || len(r.Signed) == 0:
		r.Verdict = Unsigned
	default:
		r.Verdict = Verified
	}
	return &r
}

// chainLine is what the verifier reads of a line.
type chainLine struct {
	kind    string // "", kindHeader or kindCheckpoint
	chained bool   // has seq and prev
	seq     uint64
	prev    [sha256.Size]byte
	key     string // checkpoints
}

// readChainLine reads the chain fields of one log line. The result does
// not refer to raw.
func readChainLine(raw []byte) (chainLine, error) {
	var l struct {
		Kind string  `json:"kind"`
		Seq  *uint64 `json:"seq"`
		Prev *string `json:"prev"`
		Key  string  `json:"key"`
	}
	if err := json.Unmarshal(raw, &l); err != nil {
		return chainLine{}, errors.New("not a JSON object")
	}
	cl := chainLine{kind: l.Kind, key: l.Key}
	if l.Kind != "" && l.Kind != kindHeader && l.Kind != kindCheckpoint {
		return chainLine{}, fmt.Errorf("unknown kind %q", l.Kind)
	}
	if l.Seq == nil && l.Prev == nil {
		if l.Kind != "" {
			return chainLine{}, fmt.Errorf("a %s without seq and prev", l.Kind)
		}
		return cl, nil
	}
	if l.Seq == nil || *l.Seq == 0 || l.Prev == nil {
		return chainLine{}, errors.New("seq and prev must come together, seq from 1")
	}
	if len(*l.Prev) != 2*sha256.Size {
		return chainLine{}, fmt.Errorf("prev %q is not a hex SHA-256", *l.Prev)
	}
	if _, err := hex.Decode(cl.prev[:], []byte(*l.Prev)); err != nil {
		return chainLine{}, fmt.Errorf("prev %q is not a hex SHA-256", *l.Prev)
	}
	cl.chained, cl.seq = true, *l.Seq
	return cl, nil
}
