package git

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// SourceIgnoreFile, in the repository root, lists paths to leave out of the artifact.
const SourceIgnoreFile = ".sourceignore"

// ignoreMatcher returns the skip function for artifact.ReadDir: .git always, then the
// patterns of the root .sourceignore, then spec.ignore, later patterns winning.
func ignoreMatcher(root string, specIgnore *string) (func(rel string, isDir bool) bool, error) {
	var patterns []gitignore.Pattern
	data, err := os.ReadFile(filepath.Join(root, SourceIgnoreFile))
	switch {
	case err == nil:
		patterns = append(patterns, parsePatterns(string(data))...)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, err
	}
	if specIgnore != nil {
		patterns = append(patterns, parsePatterns(*specIgnore)...)
	}
	m := gitignore.NewMatcher(patterns)
	return func(rel string, isDir bool) bool {
		parts := strings.Split(rel, "/")
		if parts[len(parts)-1] == ".git" {
			return true
		}
		return m.Match(parts, isDir)
	}, nil
}

func parsePatterns(text string) []gitignore.Pattern {
	var ps []gitignore.Pattern
	for _, line := range strings.Split(text, "\n") {
		line = strings.TrimSuffix(line, "\r")
		if strings.TrimSpace(line) == "" || strings.HasPrefix(line, "#") {
			continue
		}
		ps = append(ps, gitignore.ParsePattern(line, nil))
	}
	return ps
}
