// Command mkmmdb writes a tiny MaxMind-format country database for the
// nginx GeoIP2 recipe test (make test-deploy): the real GeoLite2 files
// need a MaxMind account, and the test needs known answers anyway.
//
//	mkmmdb -o test.mmdb 127.0.0.1/32=DE 127.0.0.2/32=US
package main

import (
	"flag"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/maxmind/mmdbwriter"
	"github.com/maxmind/mmdbwriter/mmdbtype"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "mkmmdb:", err)
		os.Exit(1)
	}
}

func run() error {
	out := flag.String("o", "test.mmdb", "output `file`")
	flag.Parse()
	tree, err := mmdbwriter.New(mmdbwriter.Options{DatabaseType: "GeoLite2-Country", RecordSize: 24, IncludeReservedNetworks: true})
	if err != nil {
		return err
	}
	for _, arg := range flag.Args() {
		cidr, cc, ok := strings.Cut(arg, "=")
		if !ok {
			return fmt.Errorf("%q is not CIDR=CC", arg)
		}
		_, network, err := net.ParseCIDR(cidr)
		if err != nil {
			return err
		}
		rec := mmdbtype.Map{"country": mmdbtype.Map{"iso_code": mmdbtype.String(cc)}}
		if err := tree.Insert(network, rec); err != nil {
			return err
		}
	}
	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if _, err := tree.WriteTo(f); err != nil {
		_ = f.Close()
		return err
	}
	return f.Close()
}
