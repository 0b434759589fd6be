package agent_test

import (
	"io"
	"net"
	"sync"
	"testing"
)

// proxy forwards TCP connections to a backend until it is closed, and can open again
// on the same address: a hub that goes away and comes back, as the agent sees it.
type proxy struct {
	t       *testing.T
	addr    string
	backend string

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]bool
}

func newProxy(t *testing.T, backend string) *proxy {
	p := &proxy{t: t, backend: backend, addr: "127.0.0.1:0", conns: map[net.Conn]bool{}}
	p.open()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) open() {
	p.mu.Lock()
	defer p.mu.Unlock()
	ln, err := net.Listen("tcp", p.addr)
	if err != nil {
		p.t.Fatalf("proxy listen: %v", err)
	}
	p.ln, p.addr = ln, ln.Addr().String()
	go p.serve(ln)
}

// close stops listening and cuts every open connection.
func (p *proxy) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

func (p *proxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		c.Close()
		return false
	}
	p.conns[c] = true
	return true
}

func (p *proxy) serve(ln net.Listener) {
	for {
		in, err := ln.Accept()
		if err != nil {
			return
		}
		out, err := net.Dial("tcp", p.backend)
		if err != nil {
			in.Close()
			continue
		}
		if !p.track(in) || !p.track(out) {
			in.Close()
			out.Close()
			continue
		}
		go func() { _, _ = io.Copy(out, in); out.Close() }()
		go func() { _, _ = io.Copy(in, out); in.Close() }()
	}
}
