package client

import (
	"bufio"
	"net"
	"strings"
	"sync/atomic"
	"testing"
)

// A server whose first PING overtakes its PONG (a slow handshake on a busy server) is tried
// again, not reported as missing; one that keeps doing it is reported after handshakeTries.
func TestConnectRetriesPingBeforePong(t *testing.T) {
	for _, tc := range []struct {
		name      string
		badFirst  int32 // connections answered PING before PONG
		wantOK    bool
		wantConns int32
	}{
		{name: "once", badFirst: 1, wantOK: true, wantConns: 2},
		{name: "always", badFirst: 100, wantOK: false, wantConns: handshakeTries},
	} {
		t.Run(tc.name, func(t *testing.T) {
			url, conns := pingFirstServer(t, tc.badFirst)
			nc, err := Connect(Options{Server: url, Getenv: func(string) string { return "" }})
			if tc.wantOK {
				if err != nil {
					t.Fatalf("connect: %v", err)
				}
				nc.Close()
			} else if err == nil || !strings.Contains(err.Error(), "expected 'PONG', got 'PING'") {
				t.Fatalf("connect: %v, want the handshake error", err)
			}
			if got := conns.Load(); got != tc.wantConns {
				t.Errorf("%d connections, want %d", got, tc.wantConns)
			}
		})
	}
}

// pingFirstServer speaks just enough of the NATS protocol to accept a connection: INFO, then,
// after the client's CONNECT and PING, a PING before the PONG for the first bad connections
// (as nats-server does when its first-ping timer fires during a slow handshake).
func pingFirstServer(t *testing.T, bad int32) (string, *atomic.Int32) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	var conns atomic.Int32
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			n := conns.Add(1)
			go func() {
				defer c.Close()
				_, _ = c.Write([]byte(`INFO {"server_id":"fake","version":"2.15.2","proto":1,"max_payload":1048576,"headers":true}` + "\r\n"))
				r := bufio.NewReader(c)
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if line != "PING\r\n" {
						continue
					}
					if n <= bad {
						_, _ = c.Write([]byte("PING\r\n"))
						continue
					}
					_, _ = c.Write([]byte("PONG\r\n"))
				}
			}()
		}
	}()
	return "nats://" + ln.Addr().String(), &conns
}
