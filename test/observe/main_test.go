package observe

import (
	"testing"

	"github.com/flotilla-dev/flotilla/test/env"
)

func TestMain(m *testing.M) { env.Main(m) }
