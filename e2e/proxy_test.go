//go:build e2e

package e2e

import (
	"net"
	"sync"
	"testing"
)

// proxy is a TCP proxy between the worker and NATS that can fail the way
// networks fail:
//
//   - blackhole: every byte in either direction is held, as a network that
//     drops packets would hold them (TCP keeps retransmitting), while both
//     sockets stay open; new connections are accepted but get no data, so a
//     client's connect times out. restore delivers what was held, in order,
//     on the connections that are still open.
//   - reset: every open connection is aborted with a TCP RST on both sides.
type proxy struct {
	ln     net.Listener
	target string

	mu     sync.Mutex
	open   chan struct{} // closed while traffic flows; a fresh one while blackholed
	links  map[*link]struct{}
	dialed int // connections accepted and forwarded, ever
	closed bool
	wg     sync.WaitGroup
}

type link struct{ client, server *net.TCPConn }

// newProxy listens on a free loopback port and forwards to target.
func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target, open: make(chan struct{}), links: map[*link]struct{}{}}
	close(p.open)
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.close)
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

// connections is how many connections the proxy has forwarded so far.
func (p *proxy) connections() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dialed
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // listener closed
		}
		s, err := net.Dial("tcp", p.target)
		if err != nil {
			_ = c.Close()
			continue
		}
		l := &link{client: c.(*net.TCPConn), server: s.(*net.TCPConn)}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			_ = c.Close()
			_ = s.Close()
			return
		}
		p.links[l] = struct{}{}
		p.dialed++
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(l, l.server, l.client)
		go p.pipe(l, l.client, l.server)
	}
}

// pipe copies src to dst, holding each chunk while the proxy is blackholed.
func (p *proxy) pipe(l *link, dst, src *net.TCPConn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			open := p.open
			p.mu.Unlock()
			<-open
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	// One side ended: end the other, as a real connection would.
	_ = l.client.Close()
	_ = l.server.Close()
	p.mu.Lock()
	delete(p.links, l)
	p.mu.Unlock()
}

// blackhole starts holding all traffic.
func (p *proxy) blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
		p.open = make(chan struct{})
	default: // already blackholed
	}
}

// restore lets traffic flow again, held bytes first.
func (p *proxy) restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	select {
	case <-p.open:
	default:
		close(p.open)
	}
}

// reset aborts every open connection with an RST on both sides and returns
// how many there were.
func (p *proxy) reset() int {
	p.mu.Lock()
	links := make([]*link, 0, len(p.links))
	for l := range p.links {
		links = append(links, l)
	}
	p.mu.Unlock()
	for _, l := range links {
		for _, c := range []*net.TCPConn{l.client, l.server} {
			_ = c.SetLinger(0) // close sends RST instead of FIN
			_ = c.Close()      // may already be closed by its pipe
		}
	}
	return len(links)
}

func (p *proxy) close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	_ = p.ln.Close()
	p.restore()
	p.reset()
	p.wg.Wait()
}
