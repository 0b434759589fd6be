package kustomize

import "k8s.io/utils/lru"

// buildCacheSize bounds the builds remembered: enough for every path of a large hub's
// current sources, while sources and paths that come and go are forgotten.
const buildCacheSize = 512

// buildCache remembers recent builds by source digest and path (a build is a pure
// function of them), least recently used first out.
type buildCache struct{ lru *lru.Cache }

func newBuildCache(size int) *buildCache { return &buildCache{lru: lru.New(size)} }

func (c *buildCache) get(key string) (built, bool) {
	v, ok := c.lru.Get(key)
	if !ok {
		return built{}, false
	}
	return v.(built), true
}

func (c *buildCache) add(key string, b built) { c.lru.Add(key, b) }

func (c *buildCache) len() int { return c.lru.Len() }
