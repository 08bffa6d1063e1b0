package declog

import (
	"bytes"
	"encoding/json"
	"errors"
)

// ErrNotRecord is ParseRecord's error for a line that is not a decision
// record: not a JSON object of Record's fields, or one without a route or
// an action.
var ErrNotRecord = errors.New("declog: not a decision-log line")

// ErrMark is ParseRecord's error for a chain line that holds no decision:
// a header or a checkpoint (see Chain).
var ErrMark = errors.New("declog: a chain header or checkpoint, not a decision")

// ParseRecord reads one decision-log line (surrounding space allowed)
// back into a Record. The result does not refer to line.
func ParseRecord(line []byte) (Record, error) {
	line = bytes.TrimSpace(line)
	var r Record
	if err := json.Unmarshal(line, &r); err != nil {
		return Record{}, ErrNotRecord
	}
	if r.Route == "" || r.Action == "" {
		var m struct {
			Kind string `json:"kind"`
		}
		if json.Unmarshal(line, &m) == nil && (m.Kind == kindHeader || m.Kind == kindCheckpoint) {
			return Record{}, ErrMark
		}
		return Record{}, ErrNotRecord
	}
	return r, nil
}
