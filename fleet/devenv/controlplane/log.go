package controlplane

import (
	"context"
	"io"
	"log/slog"
	"strings"

	"github.com/go-logr/logr"
)

// NewLogger returns a one-line-per-record text logger writing to w. Verbosity n shows
// logr's V(1)…V(n) records too; at 0, controller-runtime's start and stop chatter
// (a dozen lines per controller) is left out so that what matters stands out.
func NewLogger(w io.Writer, verbosity int) logr.Logger {
	var h slog.Handler = slog.NewTextHandler(w, &slog.HandlerOptions{
		Level: slog.Level(-verbosity),
		ReplaceAttr: func(groups []string, a slog.Attr) slog.Attr {
			// Wall-clock time is enough for a process that lives for a session.
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.String(slog.TimeKey, a.Value.Time().Format("15:04:05.000"))
			}
			return a
		},
	})
	if verbosity <= 0 {
		h = quiet{h}
	}
	return logr.FromSlogHandler(h)
}

// lifecycleChatter starts the info messages controller-runtime logs for every
// controller and runnable as it starts and stops.
var lifecycleChatter = []string{
	"Starting EventSource", "Starting Controller", "Starting workers",
	"Stopping and waiting for", "Shutdown signal received", "All workers finished",
	"Wait completed", "Starting metrics server", "Serving metrics server",
	"Starting manager", "Starting warmup",
}

// quiet drops lifecycleChatter at info level.
type quiet struct{ slog.Handler }

func (q quiet) Handle(ctx context.Context, r slog.Record) error {
	if r.Level == slog.LevelInfo {
		for _, p := range lifecycleChatter {
			if strings.HasPrefix(r.Message, p) {
				return nil
			}
		}
	}
	return q.Handler.Handle(ctx, r)
}

func (q quiet) WithAttrs(as []slog.Attr) slog.Handler { return quiet{q.Handler.WithAttrs(as)} }
func (q quiet) WithGroup(name string) slog.Handler    { return quiet{q.Handler.WithGroup(name)} }
