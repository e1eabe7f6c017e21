package testenv

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// echoServer answers each line with the same line.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

func roundTrip(c net.Conn, timeout time.Duration) (string, error) {
	_ = c.SetDeadline(time.Now().Add(timeout))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return "", err
	}
	return bufio.NewReader(c).ReadString('\n')
}

func TestFaultProxyModes(t *testing.T) {
	p := NewFaultProxy(t, echoServer(t))
	c, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if got, err := roundTrip(c, 2*time.Second); err != nil || got != "ping\n" {
		t.Fatalf("pass: got %q, %v", got, err)
	}

	p.Set(ProxyStall)
	if _, err := roundTrip(c, 200*time.Millisecond); err == nil {
		t.Fatal("stall: a reply came through")
	}
	p.Set(ProxyPass)
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if got, err := bufio.NewReader(c).ReadString('\n'); err != nil || got != "ping\n" {
		t.Fatalf("after stall: the held request was not delivered: %q, %v", got, err)
	}

	p.Set(ProxyCut)
	if _, err := roundTrip(c, 2*time.Second); err == nil {
		t.Fatal("cut: the open connection still answers")
	}
	c2, err := net.Dial("tcp", p.Addr())
	if err == nil {
		if _, err := roundTrip(c2, 2*time.Second); err == nil {
			t.Fatal("cut: a new connection answers")
		}
		c2.Close()
	}
	p.Set(ProxyPass)
	c3, err := net.Dial("tcp", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close()
	if got, err := roundTrip(c3, 2*time.Second); err != nil || got != "ping\n" {
		t.Fatalf("restored: got %q, %v", got, err)
	}
}
