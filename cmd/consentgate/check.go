package main

import (
	"fmt"
	"io"

	"github.com/consentgate/consentgate/config"
)

func cmdCheck(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("check")
	path := configFlag(fs)
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageError(fs, stderr, "unexpected argument "+fs.Arg(0))
	}
	cfg, err := config.Load(*path)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return errFailed
	}
	fmt.Fprintf(stdout, "%s: OK (policy version %s)\n", cfg.Source, cfg.PolicyVersion)
	clientID := "ephemeral"
	if cfg.Policy.ClientIDTag {
		clientID = "tag"
	}
	fmt.Fprintf(stdout, "consent: mode %s, profile %s, cookieless.client_id %s\n", cfg.Policy.Mode, cfg.Policy.Profile, clientID)
	fmt.Fprintf(stdout, "cors: %s\n", cfg.CORSRule())
	for _, w := range cfg.Warnings {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	return nil
}
