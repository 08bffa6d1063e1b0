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

// ParseRecord reads one decision-log line (surrounding space allowed)
// back into a Record. The result does not refer to line.
func ParseRecord(line []byte) (Record, error) {
	var r Record
	if err := json.Unmarshal(bytes.TrimSpace(line), &r); err != nil || r.Route == "" || r.Action == "" {
		return Record{}, ErrNotRecord
	}
	return r, nil
}
