package main

import (
	"io"
	"net"
	"net/http/httptest"
	"testing"
	"time"
)

func TestHandler(t *testing.T) {
	for _, path := range []string{"/", "/hello", "/a/b"} {
		rec := httptest.NewRecorder()
		handler("web-7f9c4").ServeHTTP(rec, httptest.NewRequest("GET", path, nil))
		body, _ := io.ReadAll(rec.Body)
		if want := "web-7f9c4 " + path + "\n"; string(body) != want || rec.Code != 200 {
			t.Errorf("GET %s = %d %q, want 200 %q", path, rec.Code, body, want)
		}
	}
}

func TestUDP(t *testing.T) {
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go serveUDP(pc, "web-7f9c4")
	c, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("q-1")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if got, want := string(buf[:n]), "web-7f9c4 q-1\n"; err != nil || got != want {
		t.Errorf("answer %q, %v; want %q", got, err, want)
	}
}
