package main

import (
	"fmt"
	"io"
	"os"

	"github.com/consentgate/consentgate/declog"
)

func cmdKeygen(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("keygen")
	out := fs.String("out", "consentgate-signing", "write the key pair to `PREFIX`.key and PREFIX.pub")
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError(fs, stderr, "keygen takes no arguments")
	}
	priv, pub, err := declog.GenerateKey()
	if err != nil {
		return err
	}
	keyPath, pubPath := *out+".key", *out+".pub"
	if err := writeNew(keyPath, priv, 0o600); err != nil {
		return err
	}
	if err := writeNew(pubPath, pub, 0o644); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "private key %s (set log.decisions.signing_key to it; keep it secret)\npublic key  %s (give it to auditors: audit --verify --pubkey %s)\n", keyPath, pubPath, pubPath)
	return nil
}

// writeNew writes data to a file that must not exist yet.
func writeNew(path string, data []byte, perm os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, perm)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
