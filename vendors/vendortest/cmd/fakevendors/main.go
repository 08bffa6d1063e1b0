// Command fakevendors serves the recording fake of the vendor APIs
// (package vendortest) for the shell and browser suites. GET /_fake
// answers the recorded events and violations as JSON.
package main

import (
	"encoding/json"
	"flag"
	"log"
	"net/http"
	"time"

	"github.com/consentgate/consentgate/consentmode"
	"github.com/consentgate/consentgate/vendors/vendortest"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:8089", "address to listen on")
	downFor := flag.Duration("down-for", 0, "answer 503 for this long after start")
	schema := flag.String("schema", "", "directory of the schema files (default: the source tree's)")
	flag.Parse()
	f, err := vendortest.New(vendortest.Options{SchemaDir: *schema})
	if err != nil {
		log.Fatal(err)
	}
	if *downFor > 0 {
		f.DownFor(*downFor)
	}
	mux := http.NewServeMux()
	mux.Handle("/", f)
	mux.HandleFunc("GET /_fake", func(w http.ResponseWriter, _ *http.Request) {
		out := map[string]any{"violations": f.Violations()}
		for v := range consentmode.Vendor(consentmode.NumVendors) {
			out[v.String()] = f.Events(v)
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	srv := &http.Server{Addr: *listen, Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	log.Fatal(srv.ListenAndServe())
}
