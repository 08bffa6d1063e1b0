package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"
	"strings"
)

// errHelp marks a --help that was answered (exit status 0).
var errHelp = errors.New("help shown")

// command is one subcommand as the usage texts show it.
type command struct {
	name     string
	synopsis string // what follows the name in "Usage:"
	summary  string // one line for the top-level usage
	details  string // paragraphs for the command's own --help; may be ""
	run      func(args []string, stdout, stderr io.Writer) error
}

// commands lists the subcommands in the order the top-level usage shows them.
func commands() []command {
	return []command{
		{"serve", "[--config FILE]", "run the gateway", serveDetails, cmdServe},
		{"explain", "[flags] URL", "decide one hit as serve would and show what would leave", explainDetails, cmdExplain},
		{"audit", "[flags] FILE...", "check captured hits or a decision log against the invariants", auditDetails, cmdAudit},
		{"replay", "--config PROPOSED [--base FILE] [--json] LOG...", "decide logged hits again under a proposed policy and show what would change", replayDetails, cmdReplay},
		{"rules", "[--config FILE] [--json] [--diff OLD NEW]", "print the effective rule table, or how two configs' tables differ", rulesDetails, cmdRules},
		{"check", "[--config FILE]", "validate a configuration and list every problem", checkDetails, cmdCheck},
		{"config", "[--config FILE]", "print the effective configuration and where each value comes from", configCmdDetails, cmdConfig},
		{"keygen", "[--out PREFIX]", "make an Ed25519 key pair that signs decision-log checkpoints", keygenDetails, cmdKeygen},
		{"version", "", "print the version, Go version, build date and dependencies", "", cmdVersion},
	}
}

const configDetails = `The configuration is the file given with --config, else the file named by
CONSENTGATE_CONFIG, else the embedded default. CONSENTGATE_<KEY> variables
override single keys (CONSENTGATE_CONSENT_MODE=basic).`

const serveDetails = `Serves tag hits and scripts on listen and /metrics, /readyz and /debug/ on
admin_listen. SIGHUP or a change of the file reloads the configuration;
SIGTERM or Ctrl-C drains (timeouts.drain), then stops. A second Ctrl-C
stops at once.`

const explainDetails = `URL is the hit as the browser sent it, absolute (https://host/g/collect?...).
Prints the route, region, action, each consent type's enforced value with
what the hit claimed and the source that decided it, the removed fields and
the upstream request exactly as serve would send it. Nothing is sent.`

const auditDetails = `FILE is a TSV of hits (METHOD<TAB>URL, with an optional BODY column and an
optional SOURCE column first), a HAR 1.2 export of the browser's network
tab, or the gateway's decision log. Each hit is decided as serve would and
checked against the invariants; the exit status is 1 if any breaks.

With --verify, FILE... are decision logs in the order they were written
(rotated files first): audit checks that every line follows the one before
(seq, and prev = the SHA-256 of that line), reports each gap, reordering,
edited, truncated or inserted line with its file and line, checks each
checkpoint's signature against --pubkey and says which lines a valid
signature covers. Exit status 0: verified; 3: the chain is intact but some
lines are not signed (or no --pubkey); 4: tampered.`

const replayDetails = `LOG... are decision logs whose records carry the hit's consent inputs. Each
logged hit is rebuilt from its record (route, region, consent inputs, the
names of the parameters and cookies it carried) and decided under the base
policy (--base, default the embedded default) and under --config. Prints the
action transitions by family and region with the proposed decisions'
reasons and example lines, the fields that would start or stop leaving, and
the records the base policy does not reproduce. Exit status 1 when any hit
would send more (a looser action or a field that starts leaving): a CI gate
for a policy change.`

const rulesDetails = `With --diff OLD NEW, prints every entry of the rule table (outcomes,
parameters, cookies, headers, regions, routes, CMP cookies) that differs
between the two configurations: "-" for OLD's value, "+" for NEW's.`

const keygenDetails = `Writes PREFIX.key, the private key (PEM, PKCS #8; mode 0600), for
log.decisions.signing_key, and PREFIX.pub, the public key (PEM, PKIX), for
audit --verify --pubkey. Existing files are never overwritten.`

const checkDetails = `Loads the configuration as serve would and prints every problem at once:
unknown keys with the closest known key, invalid values with the allowed
ones, each with its file line or environment variable. Exit status 1 if
there is any; warnings do not fail.`

const configCmdDetails = `Loads the configuration as serve would and prints every key with its
effective value and where that value comes from: default, the file and
line, or the environment variable. Secrets are shown as hashes. Exit
status 1, with the problems, if the configuration does not load.`

// topUsage is the top-level usage.
func topUsage(w io.Writer) {
	fmt.Fprintf(w, "consentgate — a consent-enforcing gateway for Google tags\n\nUsage:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %s\n", strings.TrimSpace("consentgate "+c.name+" "+c.synopsis))
	}
	fmt.Fprintf(w, "\nCommands:\n")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\n%s\n\nRun 'consentgate COMMAND --help' for a command's flags.\n", configDetails)
}

// newFlagSet returns the flag set of the named command, with the shared
// usage format: synopsis, summary, details, flags.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.Usage = func() { commandUsage(fs.Output(), name, fs) }
	return fs
}

func commandUsage(w io.Writer, name string, fs *flag.FlagSet) {
	var c command
	for _, x := range commands() {
		if x.name == name {
			c = x
		}
	}
	fmt.Fprintf(w, "Usage: %s\n\n%s.\n", strings.TrimSpace("consentgate "+c.name+" "+c.synopsis), capitalize(c.summary))
	if c.details != "" {
		fmt.Fprintf(w, "\n%s\n", c.details)
	}
	var rows [][2]string
	fs.VisitAll(func(f *flag.Flag) {
		arg, usage := flag.UnquoteUsage(f)
		dash := "--"
		if len(f.Name) == 1 {
			dash = "-"
		}
		left := dash + f.Name
		if arg != "" {
			left += " " + arg
		}
		if f.DefValue != "" && f.DefValue != "false" && f.Name != "config" {
			usage += " (default " + f.DefValue + ")"
		}
		rows = append(rows, [2]string{left, usage})
	})
	if len(rows) == 0 {
		return
	}
	width := 0
	for _, r := range rows {
		width = max(width, len(r[0]))
	}
	fmt.Fprintf(w, "\nFlags:\n")
	for _, r := range rows {
		fmt.Fprintf(w, "  %-*s  %s\n", width, r[0], r[1])
	}
	if fs.Lookup("config") != nil {
		fmt.Fprintf(w, "\n%s\n", configDetails)
	}
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// parseFlags parses args. --help prints the usage on stdout (errHelp,
// exit 0); a mistake prints it on stderr (errUsage, exit 2).
func parseFlags(fs *flag.FlagSet, args []string, stdout, stderr io.Writer) error {
	usage := fs.Usage
	fs.Usage = func() {} // printed below, on the right stream
	fs.SetOutput(stderr) // for the flag package's own error line
	err := fs.Parse(args)
	fs.Usage = usage
	switch {
	case errors.Is(err, flag.ErrHelp):
		fs.SetOutput(stdout)
		fs.Usage()
		return errHelp
	case err != nil:
		fmt.Fprintln(stderr)
		fs.Usage()
		return errUsage
	}
	return nil
}

// usageError prints msg and the command's usage on stderr (exit 2).
func usageError(fs *flag.FlagSet, stderr io.Writer, msg string) error {
	fmt.Fprintf(stderr, "consentgate %s: %s\n\n", fs.Name(), msg)
	fs.SetOutput(stderr)
	fs.Usage()
	return errUsage
}

func cmdVersion(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("version")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	bi, _ := debug.ReadBuildInfo()
	writeVersion(stdout, bi)
	return nil
}

// buildDate is set at build time with -ldflags "-X main.buildDate=..."
// (make build and make release do); "" when the builder did not.
var buildDate string

// writeVersion prints the version, then what the binary was built from:
// the Go toolchain and platform, the build date, the commit, and every
// dependency module with its version (from the build info Go stamps into
// every binary). The first line alone is the version, for scripts.
func writeVersion(w io.Writer, bi *debug.BuildInfo) {
	fmt.Fprintln(w, "consentgate", version)
	fmt.Fprintf(w, "go:       %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	if buildDate != "" {
		fmt.Fprintf(w, "built:    %s\n", buildDate)
	}
	if bi == nil {
		return
	}
	vcs := map[string]string{}
	for _, s := range bi.Settings {
		vcs[s.Key] = s.Value
	}
	if rev := vcs["vcs.revision"]; rev != "" {
		commit := rev
		if t := vcs["vcs.time"]; t != "" {
			commit += " of " + t
		}
		if vcs["vcs.modified"] == "true" {
			commit += " (with uncommitted changes)"
		}
		fmt.Fprintf(w, "commit:   %s\n", commit)
	}
	if len(bi.Deps) == 0 {
		return
	}
	fmt.Fprintln(w, "dependencies:")
	for _, d := range bi.Deps {
		v := d.Version
		if d.Replace != nil {
			v += " => " + d.Replace.Path + " " + d.Replace.Version
		}
		fmt.Fprintf(w, "  %s %s\n", d.Path, v)
	}
}
