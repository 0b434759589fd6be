package env_test

import (
	"os"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/flotilla-dev/flotilla/test/env"
)

func TestMain(m *testing.M) { env.Main(m) }

// TestShared: the first test to ask starts the value, once; tests that share it run
// side by side, and one that takes it exclusively runs alone.
func TestShared(t *testing.T) {
	var starts atomic.Int32
	var dir string
	s := env.NewShared(func(t testing.TB) string {
		starts.Add(1)
		dir = t.TempDir()
		return "value"
	})
	var mu sync.Mutex
	users, exclusive := 0, false
	use := func(t *testing.T, excl bool) {
		var v string
		if excl {
			v = s.Exclusive(t)
		} else {
			v = s.Get(t)
		}
		if v != "value" {
			t.Errorf("got %q", v)
		}
		mu.Lock()
		users++
		if exclusive || (excl && users > 1) {
			t.Errorf("used by %d tests at once, exclusive=%v/%v", users, exclusive, excl)
		}
		exclusive = excl
		mu.Unlock()
		time.Sleep(50 * time.Millisecond) // long enough for the others to try
		mu.Lock()
		users--
		exclusive = false
		mu.Unlock()
	}
	t.Run("group", func(t *testing.T) {
		for _, excl := range []bool{false, true, false, false, true} {
			t.Run(map[bool]string{false: "shared", true: "exclusive"}[excl], func(t *testing.T) {
				t.Parallel()
				use(t, excl)
				s.Get(t) // again, as a helper might: t holds it already
			})
		}
	})
	if n := starts.Load(); n != 1 {
		t.Errorf("started %d times, want once", n)
	}
	if _, err := os.Stat(dir); err != nil {
		t.Errorf("its temporary folder is gone before the package's tests are over: %v", err)
	}
}
