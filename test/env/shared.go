package env

import (
	"context"
	"flag"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// A package whose tests share control planes or fleets calls Main from its TestMain:
//
//	func TestMain(m *testing.M) { env.Main(m) }
//
// Shared values start when the first test asks for one and stop after the last test
// of the package, in the reverse order of their start.
func Main(m *testing.M) {
	pkg.mu.Lock()
	pkg.main = true
	pkg.ctx, pkg.cancel = context.WithCancel(context.Background())
	pkg.mu.Unlock()
	code := m.Run()
	if !stopShared() && code == 0 {
		code = 1
	}
	os.Exit(code)
}

// DefaultParallel raises go test's -parallel to n unless it was given on the command
// line: tests that mostly wait for API servers, hubs and agents may run more of them
// at once than there are cores (the default). Call it from TestMain before Main.
func DefaultParallel(n int) {
	if !flag.Parsed() {
		flag.Parse()
	}
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == "test.parallel" })
	f := flag.Lookup("test.parallel")
	if set || f == nil {
		return
	}
	if cur, err := strconv.Atoi(f.Value.String()); err == nil && cur < n {
		_ = f.Value.Set(strconv.Itoa(n))
	}
}

// pkg holds what the package's shared values need stopped at the end.
var pkg struct {
	mu       sync.Mutex
	main     bool
	ctx      context.Context
	cancel   context.CancelFunc
	cleanups []func()
	failed   bool
}

// stopShared runs the shared values' cleanups, last registered first, and reports
// whether all went well.
func stopShared() bool {
	pkg.mu.Lock()
	cleanups := pkg.cleanups
	pkg.cleanups = nil
	pkg.mu.Unlock()
	pkg.cancel()
	for i := len(cleanups) - 1; i >= 0; i-- {
		cleanups[i]()
	}
	pkg.mu.Lock()
	defer pkg.mu.Unlock()
	return !pkg.failed
}

// Shared is a value, e.g. a control plane or a whole fleet, that the tests of a
// package share instead of starting their own: the first test that calls Get starts
// it, and it stops once all the package's tests are over (TestMain calls Main).
//
// Tests that share it may run in parallel (t.Parallel) and must then keep to their
// own namespaces, names and labels. A test that changes what others rely on takes
// it with Exclusive instead: it waits until the tests using it have finished, and
// they wait for it.
type Shared[T any] struct {
	start func(testing.TB) T

	once   sync.Once
	val    T
	failed string

	use     sync.RWMutex
	mu      sync.Mutex
	holders map[string]bool // the tests holding use, by name
}

// NewShared returns a Shared that start starts. start receives a testing.TB whose
// Cleanup and TempDir last until the package's tests are over and whose failures,
// while it starts, fail the test that asked first.
func NewShared[T any](start func(testing.TB) T) *Shared[T] {
	return &Shared[T]{start: start, holders: map[string]bool{}}
}

// Get returns the shared value for t, starting it on first use; t fails if it could
// not start. t (with its subtests) shares it with the other tests until its end.
func (s *Shared[T]) Get(t testing.TB) T {
	t.Helper()
	return s.get(t, false)
}

// Exclusive returns the shared value for t alone: t waits until no other test uses
// it, and other tests wait until t and its cleanups are done.
func (s *Shared[T]) Exclusive(t testing.TB) T {
	t.Helper()
	return s.get(t, true)
}

func (s *Shared[T]) get(t testing.TB, exclusive bool) T {
	t.Helper()
	pkg.mu.Lock()
	inMain := pkg.main
	pkg.mu.Unlock()
	if !inMain {
		t.Fatal("a shared test fixture needs the package's TestMain to call env.Main(m), which stops it after the last test")
	}
	s.lock(t, exclusive)
	s.once.Do(func() {
		st := &sharedTB{TB: t}
		st.starting.Store(t)
		started := false
		// Deferred, so that a start that fails the test (runtime.Goexit) or panics
		// still leaves a reason for the tests that ask next.
		defer func() {
			st.starting.Store(nil)
			s.failed = st.failure()
			if s.failed == "" && !started {
				s.failed = "its start did not return"
			}
		}()
		s.val = s.start(st)
		started = true
	})
	if s.failed != "" {
		t.Fatalf("shared fixture did not start: %s", s.failed)
	}
	return s.val
}

// lock takes the read (or, exclusive, the write) side of use for t until t ends,
// unless t or a parent test holds it already.
func (s *Shared[T]) lock(t testing.TB, exclusive bool) {
	name := t.Name()
	s.mu.Lock()
	held := false
	for prefix := name; prefix != "" && !held; {
		held = s.holders[prefix]
		i := strings.LastIndex(prefix, "/")
		if i < 0 {
			break
		}
		prefix = prefix[:i]
	}
	s.mu.Unlock()
	if held {
		return
	}
	if exclusive {
		s.use.Lock()
	} else {
		s.use.RLock()
	}
	s.mu.Lock()
	s.holders[name] = true
	s.mu.Unlock()
	t.Cleanup(func() {
		s.mu.Lock()
		delete(s.holders, name)
		s.mu.Unlock()
		if exclusive {
			s.use.Unlock()
		} else {
			s.use.RUnlock()
		}
	})
}

// sharedTB is the testing.TB a shared value starts with. Its cleanups and temporary
// folders last until the package's tests are over. While the value starts, failures
// and logs go to the test that asked for it; afterwards (a background goroutine, a
// cleanup at the end) they go to stderr, and a failure fails the package.
type sharedTB struct {
	testing.TB // the test that asked first; only while starting is it used

	starting atomicTB
	mu       sync.Mutex
	failures []string
}

// atomicTB is the test starting a shared value, or nil.
type atomicTB struct {
	mu sync.Mutex
	t  testing.TB
}

func (a *atomicTB) Store(t testing.TB) { a.mu.Lock(); a.t = t; a.mu.Unlock() }
func (a *atomicTB) Load() testing.TB   { a.mu.Lock(); defer a.mu.Unlock(); return a.t }

func (s *sharedTB) failure() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return strings.Join(s.failures, "; ")
}

// failed reports a failure once no test is starting the value: it prints it and
// fails the package; fatal then ends the calling goroutine.
func (s *sharedTB) failed(fatal bool, msg string) {
	s.record(msg)
	fmt.Fprintf(os.Stderr, "shared test fixture: %s\n", msg)
	pkg.mu.Lock()
	pkg.failed = true
	pkg.mu.Unlock()
	if fatal {
		runtime.Goexit()
	}
}

func (s *sharedTB) record(msg string) {
	s.mu.Lock()
	s.failures = append(s.failures, msg)
	s.mu.Unlock()
}

func (s *sharedTB) Cleanup(f func()) {
	pkg.mu.Lock()
	defer pkg.mu.Unlock()
	pkg.cleanups = append(pkg.cleanups, f)
}

func (s *sharedTB) TempDir() string {
	dir, err := os.MkdirTemp("", "flotilla-shared-")
	if err != nil {
		s.Fatal(err)
	}
	s.Cleanup(func() { _ = os.RemoveAll(dir) })
	return dir
}

func (s *sharedTB) Context() context.Context { return pkg.ctx }

// The methods below report to the starting test, marked as helpers so that its log
// names the line in the shared value's start; afterwards, see failed and log.

func (s *sharedTB) Error(args ...any) {
	if t := s.starting.Load(); t != nil {
		t.Helper()
		s.record(fmt.Sprint(args...))
		t.Error(args...)
		return
	}
	s.failed(false, fmt.Sprint(args...))
}

func (s *sharedTB) Errorf(format string, args ...any) {
	if t := s.starting.Load(); t != nil {
		t.Helper()
		s.record(fmt.Sprintf(format, args...))
		t.Errorf(format, args...)
		return
	}
	s.failed(false, fmt.Sprintf(format, args...))
}

func (s *sharedTB) Fatal(args ...any) {
	if t := s.starting.Load(); t != nil {
		t.Helper()
		s.record(fmt.Sprint(args...))
		t.Fatal(args...)
	}
	s.failed(true, fmt.Sprint(args...))
}

func (s *sharedTB) Fatalf(format string, args ...any) {
	if t := s.starting.Load(); t != nil {
		t.Helper()
		s.record(fmt.Sprintf(format, args...))
		t.Fatalf(format, args...)
	}
	s.failed(true, fmt.Sprintf(format, args...))
}

func (s *sharedTB) Fail()    { s.Error("failed") }
func (s *sharedTB) FailNow() { s.Fatal("failed") }

func (s *sharedTB) Skip(args ...any)                 { s.Fatal(append([]any{"skipped: "}, args...)...) }
func (s *sharedTB) Skipf(format string, args ...any) { s.Fatalf("skipped: "+format, args...) }
func (s *sharedTB) SkipNow()                         { s.Fatal("skipped") }

func (s *sharedTB) Log(args ...any) {
	if t := s.starting.Load(); t != nil {
		t.Helper()
		t.Log(args...)
		return
	}
	s.log(fmt.Sprint(args...))
}

func (s *sharedTB) Logf(format string, args ...any) {
	if t := s.starting.Load(); t != nil {
		t.Helper()
		t.Logf(format, args...)
		return
	}
	s.log(fmt.Sprintf(format, args...))
}

func (s *sharedTB) Helper() {
	if t := s.starting.Load(); t != nil {
		t.Helper()
	}
}

func (s *sharedTB) Failed() bool          { return s.failure() != "" }
func (s *sharedTB) Setenv(string, string) { panic("Setenv in a shared test fixture") }
func (s *sharedTB) Chdir(string)          { panic("Chdir in a shared test fixture") }
func (s *sharedTB) Attr(string, string)   {}

// log writes what the value logs once started to stderr, with go test -v.
func (s *sharedTB) log(msg string) {
	if testing.Verbose() {
		fmt.Fprintf(os.Stderr, "shared test fixture: %s\n", msg)
	}
}

var names = struct {
	sync.Mutex
	n map[string]int
}{n: map[string]int{}}

// Unique returns name the first time it is asked for, then name-2, name-3…: names
// for what a test creates in a shared fixture, new at each run of the test (go test
// -count) since the fixture keeps what the last run left.
func Unique(name string) string {
	names.Lock()
	defer names.Unlock()
	names.n[name]++
	if n := names.n[name]; n > 1 {
		return name + "-" + strconv.Itoa(n)
	}
	return name
}
