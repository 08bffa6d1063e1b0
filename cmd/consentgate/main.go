// Command consentgate is a Google Consent Mode–compatible tag gateway: a
// reverse proxy in front of Google's analytics and ad endpoints that lets
// only data matching the visitor's consent leave.
//
//	consentgate serve   [--config FILE]
//	consentgate explain [--config FILE] [--json] [-X METHOD] [-H 'Name: value']... [--body TEXT|@FILE] [--region CC] [--client-ip IP] URL
//	consentgate audit   [--config FILE] [--json] [--region CC] FILE...
//	consentgate audit   --verify [--pubkey FILE] [--json] LOG...
//	consentgate keygen  [--out PREFIX]
//	consentgate replay  --config PROPOSED [--base FILE] [--json] LOG...
//	consentgate rules   [--config FILE] [--json] [--diff OLD NEW]
//	consentgate check   [--config FILE]
//	consentgate config  [--config FILE]
//	consentgate version
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/debug"
)

// version is set at build time with -ldflags "-X main.version=..." (make
// build and make release use `git describe --tags`). Without it, the
// module version Go stamped into the binary is used (v1.2.3 for go
// install ...@v1.2.3, a pseudo-version for a build in a git checkout).
var version = "dev"

// errUsage marks a command-line mistake (exit status 2).
var errUsage = errors.New("usage")

// errFailed marks a command that ran but found a problem, such as a broken
// audit invariant (exit status 1, no extra message).
var errFailed = errors.New("failed")

// errUnsigned and errTampered are audit --verify's findings: the chain is
// intact but not all of it is signed (exit status 3), or a line is
// missing, out of order, edited or truncated, or a signature fails (4).
var (
	errUnsigned = errors.New("unsigned")
	errTampered = errors.New("tampered")
)

func main() {
	if version == "dev" {
		if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			version = bi.Main.Version
		}
	}
	err := run(os.Args[1:], os.Stdout, os.Stderr)
	switch {
	case err == nil:
	case errors.Is(err, errUsage):
		os.Exit(2)
	case errors.Is(err, errFailed):
		os.Exit(1)
	case errors.Is(err, errUnsigned):
		os.Exit(3)
	case errors.Is(err, errTampered):
		os.Exit(4)
	default:
		fmt.Fprintln(os.Stderr, "consentgate:", err)
		os.Exit(1)
	}
}

func run(args []string, stdout, stderr io.Writer) error {
	err := dispatch(args, stdout, stderr)
	if errors.Is(err, errHelp) {
		return nil
	}
	return err
}

func dispatch(args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		topUsage(stderr)
		return errUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "help", "-h", "--help":
		if len(rest) > 0 {
			return dispatch([]string{rest[0], "--help"}, stdout, stderr)
		}
		topUsage(stdout)
		return nil
	case "--version", "-version", "-v":
		name = "version"
	}
	for _, c := range commands() {
		if c.name == name {
			return c.run(rest, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "consentgate: unknown command %q\n\n", name)
	topUsage(stderr)
	return errUsage
}
