//go:build !faults

package main

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests if a goroutine outlives them: serve,
// the reloader and the subcommands that run a gateway must stop all they
// start. (The fault suite, -tags faults, has its own TestMain.)
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// fasthttp's own housekeeping goroutines sleep out their period
		// after Shutdown and CloseIdleConnections, then exit.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*HostClient).connsCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrEntryCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.updateServerDate.func1"),
		// A fasthttp.Client's cleaner exits once its host clients have
		// idled out; the default dialer's address-cache cleaner lives as
		// long as the process.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*Client).mCleaner"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*TCPDialer).tcpAddrsClean"),
		// PipelineClient (delivery.pipeline_conns) has no Close: its
		// connection goroutines end after MaxIdleConnDuration idle.
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*pipelineConnClient).worker"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*pipelineConnClient).writer"),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*pipelineConnClient).reader"),
	)
}
