package kustomize

import (
	"fmt"
	"testing"
)

// TestBuildCacheEvictsLeastRecentlyUsed: the cache stays bounded, and what was just
// read survives the next insertion.
func TestBuildCacheEvictsLeastRecentlyUsed(t *testing.T) {
	c := newBuildCache(2)
	c.add("a", built{digest: "sha256:a"})
	c.add("b", built{digest: "sha256:b"})
	if _, ok := c.get("a"); !ok {
		t.Fatal("a is missing before any eviction")
	}
	c.add("c", built{digest: "sha256:c"})
	if _, ok := c.get("b"); ok {
		t.Error("b, the least recently used, was not evicted")
	}
	for _, k := range []string{"a", "c"} {
		if b, ok := c.get(k); !ok || b.digest != "sha256:"+k {
			t.Errorf("get(%s) = %v, %v", k, b, ok)
		}
	}

	big := newBuildCache(buildCacheSize)
	for i := 0; i < 3*buildCacheSize; i++ {
		big.add(fmt.Sprint(i), built{digest: fmt.Sprint(i)})
	}
	if big.len() != buildCacheSize {
		t.Errorf("cache holds %d builds, want at most %d", big.len(), buildCacheSize)
	}
}
