package delivery

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/valyala/fasthttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestErrClass(t *testing.T) {
	tests := []struct {
		name string
		give error
		want string
	}{
		{"status answer", nil, "status"},
		{"dns", fmt.Errorf("dial: %w", &net.DNSError{Err: "no such host", Name: "x.example", IsNotFound: true}), "dns"},
		{"tls certificate", fmt.Errorf("handshake: %w", x509.UnknownAuthorityError{}), "tls"},
		{"tls record", tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}, "tls"},
		{"tls handshake timeout", fasthttp.ErrTLSHandshakeTimeout, "tls"},
		{"refused", &net.OpError{Op: "dial", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}, "refused"},
		{"timeout", fasthttp.ErrTimeout, "timeout"},
		{"other", errors.New("connection reset"), "other"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := errClass(tt.give); got != tt.want {
				t.Errorf("errClass(%v) = %q, want %q", tt.give, got, tt.want)
			}
		})
	}
}

// TestDeliveryLogSampled: a line per hit cannot flood the log.
func TestDeliveryLogSampled(t *testing.T) {
	core, logs := observer.New(zap.DebugLevel)
	log := sampled(zap.New(core))
	for range 1000 {
		log.Warn("delivery: upstream refused a queued hit; dropped")
	}
	if n := logs.Len(); n > logFirst+1000/logThereafter || n < logFirst {
		t.Errorf("%d of 1000 lines logged, want %d to %d", n, logFirst, logFirst+1000/logThereafter)
	}
}
