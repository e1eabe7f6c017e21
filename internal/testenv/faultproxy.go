package testenv

import (
	"net"
	"sync"
	"testing"
)

// ProxyMode is what a FaultProxy does with traffic.
type ProxyMode int

// The modes of a FaultProxy.
const (
	ProxyPass  ProxyMode = iota // forward both ways
	ProxyCut                    // close every connection; new ones are closed at once (a dead server)
	ProxyStall                  // keep connections open but forward nothing (a hung server or a black-holed network)
)

// FaultProxy is a TCP proxy in front of a real service (PostgreSQL, Redis,
// ...) that a test can cut or stall, to fault one client without stopping
// the shared server the other tests use. It is safe for concurrent use.
type FaultProxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  ProxyMode
	conns map[net.Conn]struct{}
	wake  chan struct{} // closed when the mode leaves ProxyStall
	wg    sync.WaitGroup
}

// NewFaultProxy starts a proxy on 127.0.0.1 in front of target (host:port)
// in ProxyPass mode; it is closed when the test ends.
func NewFaultProxy(t testing.TB, target string) *FaultProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("testenv: fault proxy: %v", err)
	}
	p := &FaultProxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}, wake: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

// Addr returns the proxy's host:port.
func (p *FaultProxy) Addr() string { return p.ln.Addr().String() }

// Set switches the mode. ProxyCut closes every open connection at once;
// leaving ProxyStall lets stalled connections flow again.
func (p *FaultProxy) Set(m ProxyMode) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == ProxyStall && m != ProxyStall {
		close(p.wake)
		p.wake = make(chan struct{})
	}
	p.mode = m
	if m == ProxyCut {
		for c := range p.conns {
			_ = c.Close()
		}
	}
}

// Close stops the proxy and closes every connection through it.
func (p *FaultProxy) Close() {
	_ = p.ln.Close()
	p.Set(ProxyCut)
	p.wg.Wait()
}

func (p *FaultProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.mode == ProxyCut {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *FaultProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	_ = c.Close()
}

func (p *FaultProxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c) {
			_ = c.Close()
			continue
		}
		p.wg.Add(1)
		go p.serve(c)
	}
}

func (p *FaultProxy) serve(c net.Conn) {
	defer p.wg.Done()
	defer p.untrack(c)
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(up) {
		_ = up.Close()
		return
	}
	defer p.untrack(up)
	done := make(chan struct{}, 2)
	go func() { p.pipe(up, c); done <- struct{}{} }()
	go func() { p.pipe(c, up); done <- struct{}{} }()
	<-done
	_ = c.Close()
	_ = up.Close()
	<-done
}

// pipe copies src to dst, holding each chunk while the proxy stalls.
func (p *FaultProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			for {
				p.mu.Lock()
				mode, wake := p.mode, p.wake
				p.mu.Unlock()
				if mode == ProxyCut {
					return
				}
				if mode != ProxyStall {
					break
				}
				<-wake
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return // io.EOF or a closed connection: both sides are closed by serve
		}
	}
}
