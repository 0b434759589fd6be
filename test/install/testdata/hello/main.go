// Command hello stands in for the hub and the agent in the image tests: it prints the
// version linked in, as theirs do with --version.
package main

import (
	"fmt"

	"github.com/flotilla-dev/flotilla/api/version"
)

func main() { fmt.Println(version.Version) }
