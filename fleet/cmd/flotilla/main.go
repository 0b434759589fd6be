// Command flotilla is the Flotilla CLI.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/flotilla-dev/flotilla/fleet/cli"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	go func() {
		// After the first signal, a second one ends the process the default way.
		<-ctx.Done()
		stop()
	}()
	err := cli.NewRootCommand().ExecuteContext(ctx)
	code, quiet := cli.ExitCode(err)
	if !quiet {
		fmt.Fprintln(os.Stderr, "Error:", err)
	}
	os.Exit(code)
}
