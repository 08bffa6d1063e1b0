package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"

	"github.com/consentgate/consentgate/config"
	"github.com/consentgate/consentgate/consentmode"
	"github.com/consentgate/consentgate/declog"
)

// replayReport is what replay prints: how a proposed policy would decide
// the logged hits, against how the base policy decides the same rebuilt
// hits.
type replayReport struct {
	Base     string `json:"base_policy_version"`
	Proposed string `json:"proposed_policy_version"`
	Records  int    `json:"records"`
	Replayed int    `json:"replayed"`
	// NotReplayable counts records without inputs (older logs,
	// Measurement Protocol, scripts).
	NotReplayable int `json:"not_replayable"`
	// Mismatches are records the base policy decides differently from
	// the log: the policy in force was another one, or an input the log
	// does not hold (a CMP cookie) decided them.
	Mismatches  []replayExample `json:"baseline_mismatches"`
	Transitions []transition    `json:"transitions"`
	Changed     int             `json:"changed"`
	StartLeave  map[string]int  `json:"fields_start_leaving"`
	StopLeave   map[string]int  `json:"fields_stop_leaving"`
	MoreLeaves  int             `json:"hits_sending_more"`
	byKey       map[string]*transition
}

// transition is one row of the table: hits of a family and region whose
// action goes from one to another.
type transition struct {
	Family  string          `json:"family"`
	Region  string          `json:"region"`
	From    string          `json:"from"`
	To      string          `json:"to"`
	Count   int             `json:"count"`
	Reasons []string        `json:"reasons"` // the proposed decisions' reasons
	Example []replayExample `json:"examples"`
	reasons map[string]bool
}

type replayExample struct {
	Where  string `json:"hit"`
	Logged string `json:"logged,omitempty"`
	Action string `json:"action"`
	Detail string `json:"detail,omitempty"`
}

// strictness orders the actions by how much they keep back.
var strictness = map[string]int{"forward": 0, "strip": 1, "cookieless": 2, "block": 3}

func cmdReplay(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("replay")
	path := configFlag(fs)
	base := fs.String("base", "", "the policy in force, to compare with (`FILE`; default: the embedded default)")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parseFlags(fs, reorder(args, map[string]bool{"json": true, "h": true, "help": true}), stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return usageError(fs, stderr, "give at least one decision LOG")
	}
	if *path == "" {
		return usageError(fs, stderr, "give the proposed policy with --config FILE")
	}
	proposed, err := config.Load(*path)
	if err != nil {
		return fmt.Errorf("--config: %w", err)
	}
	current, err := config.Load(*base)
	if err != nil {
		return fmt.Errorf("--base: %w", err)
	}
	rep := &replayReport{Base: current.PolicyVersion, Proposed: proposed.PolicyVersion, StartLeave: map[string]int{}, StopLeave: map[string]int{}, byKey: map[string]*transition{}}
	for _, file := range fs.Args() {
		data, err := os.ReadFile(file)
		if err != nil {
			return err
		}
		for n, line := range bytes.Split(data, []byte("\n")) {
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			r, err := declog.ParseRecord(line)
			if errors.Is(err, declog.ErrMark) {
				continue
			}
			if err != nil {
				return fmt.Errorf("%s:%d: not a decision-log line", file, n+1)
			}
			rep.add(fmt.Sprintf("%s:%d", file, n+1), &r, current, proposed)
		}
	}
	rep.finish()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else {
		printReplay(stdout, rep)
	}
	if rep.MoreLeaves > 0 {
		fmt.Fprintf(stderr, "replay: %d hit(s) would send more under the proposed policy\n", rep.MoreLeaves)
		return errFailed
	}
	return nil
}

// add re-decides one record under both policies.
func (rep *replayReport) add(where string, r *declog.Record, current, proposed *config.Config) {
	rep.Records++
	in, err := declog.Replay(r)
	if err != nil {
		rep.NotReplayable++
		return
	}
	rep.Replayed++
	var w consentmode.Work
	was := consentmode.Decide(&in, current.Policy, &w)
	now := consentmode.Decide(&in, proposed.Policy, &w)
	wasAction, nowAction := effect(&was, current), effect(&now, proposed)
	if wasAction != r.Action && len(rep.Mismatches) < 20 {
		rep.Mismatches = append(rep.Mismatches, replayExample{Where: where, Logged: r.Action, Action: wasAction, Detail: "sources " + strings.Join(r.Sources[:], ",")})
	}
	more := strictness[nowAction] < strictness[wasAction]
	for f := range was.Removed.All {
		if !now.Removed.Has(f) && nowAction != "block" {
			rep.StartLeave[f.String()]++
			more = true
		}
	}
	for f := range now.Removed.All {
		if !was.Removed.Has(f) && wasAction != "block" {
			rep.StopLeave[f.String()]++
		}
	}
	if more {
		rep.MoreLeaves++
	}
	if wasAction != nowAction || was.Removed != now.Removed {
		rep.Changed++
	}
	if wasAction == nowAction {
		return
	}
	key := strings.Join([]string{r.Family, r.Region, wasAction, nowAction}, "\x00")
	t := rep.byKey[key]
	if t == nil {
		t = &transition{Family: r.Family, Region: r.Region, From: wasAction, To: nowAction, reasons: map[string]bool{}}
		rep.byKey[key] = t
	}
	t.Count++
	for _, reason := range now.Reasons.Strings() {
		t.reasons[reason] = true
	}
	if len(t.Example) < 3 {
		t.Example = append(t.Example, replayExample{Where: where, Logged: r.Action, Action: nowAction})
	}
}

// effect is what a decision does to the hit under cfg: in a dry run
// (consent.enforce: false) the hit is forwarded whole.
func effect(d *consentmode.Decision, cfg *config.Config) string {
	if !cfg.Enforce {
		d.Removed = consentmode.FieldSet{}
		return consentmode.ActionForward.String()
	}
	return d.Action.String()
}

func (rep *replayReport) finish() {
	for _, t := range rep.byKey {
		t.Reasons = sortedKeys(t.reasons)
		rep.Transitions = append(rep.Transitions, *t)
	}
	sort.Slice(rep.Transitions, func(i, j int) bool {
		a, b := rep.Transitions[i], rep.Transitions[j]
		return a.Family+a.Region+a.From+a.To < b.Family+b.Region+b.From+b.To
	})
}

func printReplay(w io.Writer, rep *replayReport) {
	fmt.Fprintf(w, "policy   %s (base) -> %s (proposed)\n", rep.Base, rep.Proposed)
	fmt.Fprintf(w, "records  %d, replayed %d, not replayable %d (no inputs logged, Measurement Protocol or script)\n", rep.Records, rep.Replayed, rep.NotReplayable)
	fmt.Fprintf(w, "changed  %d hit(s) decided differently; %d would send more\n", rep.Changed, rep.MoreLeaves)
	fmt.Fprintf(w, "\n## Action transitions\n\n| family | region | from | to | hits | reasons (proposed) | examples |\n|---|---|---|---|---|---|---|\n")
	for _, t := range rep.Transitions {
		var ex []string
		for _, e := range t.Example {
			ex = append(ex, e.Where)
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %d | %s | %s |\n", t.Family, t.Region, t.From, t.To, t.Count, strings.Join(t.Reasons, " "), strings.Join(ex, " "))
	}
	fmt.Fprintf(w, "\n## Fields that would start leaving\n\n| field | hits |\n|---|---|\n")
	for _, f := range sortedKeys(rep.StartLeave) {
		fmt.Fprintf(w, "| %s | %d |\n", f, rep.StartLeave[f])
	}
	fmt.Fprintf(w, "\n## Fields that would stop leaving\n\n| field | hits |\n|---|---|\n")
	for _, f := range sortedKeys(rep.StopLeave) {
		fmt.Fprintf(w, "| %s | %d |\n", f, rep.StopLeave[f])
	}
	if len(rep.Mismatches) > 0 {
		fmt.Fprintf(w, "\n## Not reproduced by the base policy (another policy was in force, or a CMP cookie decided)\n\n")
		for _, m := range rep.Mismatches {
			fmt.Fprintf(w, "%s logged %s, base policy %s (%s)\n", m.Where, m.Logged, m.Action, m.Detail)
		}
	}
}
