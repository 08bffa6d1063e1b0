// Command fakeupstream stands in for Google's endpoints in the deploy
// tests (make test-deploy): it answers every request with 204 and writes
// one JSON line per request (method, host, URI, headers) to stdout, so a
// script can assert on what the gateway actually sent upstream.
//
//	fakeupstream -listen 127.0.0.1:18081 > received.jsonl
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"sync"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:18081", "address to listen on")
	flag.Parse()
	var mu sync.Mutex
	enc := json.NewEncoder(os.Stdout)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
		hdr := map[string]string{}
		for k, v := range r.Header {
			hdr[k] = v[0]
		}
		mu.Lock()
		_ = enc.Encode(map[string]any{"method": r.Method, "host": r.Host, "uri": r.RequestURI, "header": hdr, "body": string(body)})
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	})
	if err := http.ListenAndServe(*listen, h); err != nil {
		fmt.Fprintln(os.Stderr, "fakeupstream:", err)
		os.Exit(1)
	}
}
